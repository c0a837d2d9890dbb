#!/usr/bin/env python3
"""Small helpers for bench/probe-throughput.sh (not a test; never run by CI).

Subcommands:
  nginx-conf  write the nginx config and the expected-leaf map
  wait-ready  wait until the listeners accept connections
  targets     write a targets file (one host:port per line)
  check-certfleet / check-nmap / check-openssl   compare results with the expected leaves
  cpu-ticks   sum utime+stime (seconds) of a process tree (nginx master + workers)
  table       print the summary table from the rows file
"""
import collections
import json
import os
import re
import socket
import statistics
import sys
import time
import xml.etree.ElementTree as ET


def nginx_conf(args):
    tmp, n_ports, base, n_addrs, workers, n_leaves = (
        args[0], int(args[1]), int(args[2]), int(args[3]), int(args[4]), int(args[5]))
    leaves = json.load(open(os.path.join(tmp, "leaves.json")))
    assert len(leaves) == n_leaves
    # port base+i is served by server block (and leaf) i % n_leaves, on every address
    blocks = collections.defaultdict(list)
    expected = {}
    for i in range(n_ports):
        port = base + i
        b = i % n_leaves
        blocks[b].append(port)
        expected[str(port)] = leaves[b]
    # listening sockets and connections both take worker_connections slots
    listeners = n_ports * n_addrs
    wc = listeners + 8192
    out = []
    out.append(f"worker_processes {workers};")
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = listeners + 2 * 8192
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    out.append(f"worker_rlimit_nofile {want};")
    out.append(f"pid {tmp}/nginx.pid;")
    out.append(f"error_log {tmp}/error.log warn;")
    out.append("daemon off;")
    out.append(f"events {{ worker_connections {wc}; }}")
    out.append("http {")
    out.append("  access_log off;")
    for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        out.append(f"  {t}_temp_path {tmp}/nginx-tmp/{t};")
    out.append("  ssl_protocols TLSv1.2 TLSv1.3;")
    for b in range(n_leaves):
        leaf = leaves[b]
        out.append("  server {")
        for port in blocks[b]:
            for a in range(1, n_addrs + 1):
                out.append(f"    listen 127.0.0.{a}:{port} ssl;")
        out.append(f"    ssl_certificate {leaf['chain']};")
        out.append(f"    ssl_certificate_key {leaf['key']};")
        out.append("    return 204;")
        out.append("  }")
    out.append("}")
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write("\n".join(out) + "\n")
    with open(os.path.join(tmp, "expected.json"), "w") as f:
        json.dump(expected, f)
    print(f"nginx.conf: {n_leaves} server blocks, {listeners} listen lines "
          f"({n_ports} ports x {n_addrs} addresses), worker_connections {wc}")


def wait_ready(args):
    n_ports, base, n_addrs, deadline = int(args[0]), int(args[1]), int(args[2]), float(args[3])
    probes = [(f"127.0.0.{a}", p) for a in (1, n_addrs) for p in (base, base + n_ports - 1)]
    end = time.monotonic() + deadline
    pending = list(probes)
    while pending and time.monotonic() < end:
        still = []
        for host, port in pending:
            try:
                socket.create_connection((host, port), timeout=0.5).close()
            except OSError:
                still.append((host, port))
        pending = still
        if pending:
            time.sleep(0.2)
    if pending:
        print(f"not listening: {pending}", file=sys.stderr)
        sys.exit(1)


def targets(args):
    path, n_ports, base, n_addrs = args[0], int(args[1]), int(args[2]), int(args[3])
    with open(path, "w") as f:
        for a in range(1, n_addrs + 1):
            for i in range(n_ports):
                f.write(f"127.0.0.{a}:{base + i}\n")


def split_target(t):
    if t.startswith("["):
        host, _, port = t[1:].partition("]:")
    else:
        host, _, port = t.rpartition(":")
    port = port.split("@")[0]
    return host, port


def report(label, n_expected, right, wrong, missing, extra_lines, summary_file):
    print(f"  correctness[{label}]: {right} right, {wrong} wrong, {missing} missing "
          f"(of {n_expected})")
    for line in extra_lines:
        print(f"    {line}")
    if summary_file:
        with open(summary_file, "w") as f:
            f.write(f"{right} {wrong} {missing}\n")


def check_certfleet(args):
    expected = json.load(open(args[0]))
    out, n_expected, label = args[1], int(args[2]), args[3]
    summary_file = args[4] if len(args) > 4 else None
    seen = {}
    statuses = collections.Counter()
    errors = collections.Counter()
    bad = []
    dups = 0
    elapsed = []
    nonjson = 0
    findings = collections.Counter()
    versions = collections.Counter()
    chain_lens = collections.Counter()
    with open(out) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                o = json.loads(line)
            except ValueError:
                nonjson += 1
                continue
            t = o.get("target", o.get("address"))
            if t is None:
                nonjson += 1
                continue
            if t in seen:
                dups += 1
            host, port = split_target(str(t))
            status = o.get("status")
            statuses[status] += 1
            if o.get("error"):
                errors[str(o.get("error"))[:120]] += 1
            if isinstance(o.get("elapsed_ms"), (int, float)):
                elapsed.append((o["elapsed_ms"], t, status))
            chain = o.get("chain") or []
            findings[",".join(sorted(o.get("findings") or [])) or "(none)"] += 1
            tls = o.get("tls") or {}
            versions[f"{tls.get('version')}/{tls.get('cipher')}"] += 1
            chain_lens[len(chain)] += 1
            got = chain[0].get("sha256") if chain and isinstance(chain[0], dict) else None
            exp = expected.get(port)
            ok = status == "ok" and exp is not None and got == exp["sha256"]
            seen[t] = ok
            if not ok and len(bad) < 10:
                want = exp["cn"] if exp else "?"
                gotcn = None
                if got and exp:
                    gotcn = next((v["cn"] for v in expected.values() if v["sha256"] == got), "unknown leaf")
                bad.append(f"{t}: status={status} error={o.get('error')!r} chain_len={len(chain)} "
                           f"leaf={gotcn or got} want={want}")
    right = sum(1 for v in seen.values() if v)
    wrong = sum(1 for v in seen.values() if not v)
    missing = max(0, n_expected - len(seen))
    extra = [f"statuses: {dict(statuses)}; findings: {dict(findings)}; chain lengths: {dict(chain_lens)}; "
             f"tls: {dict(versions)}"]
    if dups:
        extra.append(f"duplicate result lines: {dups}")
    if nonjson:
        extra.append(f"lines that are not result objects: {nonjson}")
    if errors:
        extra.append(f"errors: {dict(errors.most_common(5))}")
    if elapsed:
        ms = sorted(e[0] for e in elapsed)
        p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
        slow = sorted(elapsed, reverse=True)[:3]
        extra.append(f"elapsed_ms per probe: p50={p(0.5)} p90={p(0.9)} p99={p(0.99)} max={ms[-1]}; "
                     f"slowest: {', '.join(f'{t}={e}ms({s})' for e, t, s in slow)}")
    extra += bad
    report(label, n_expected, right, wrong, missing, extra, summary_file)


def check_nmap(args):
    expected = json.load(open(args[0]))
    xml, n_expected, label = args[1], int(args[2]), args[3]
    summary_file = args[4] if len(args) > 4 else None
    by_sha1 = {v["sha1"]: k for k, v in expected.items()}
    right = wrong = 0
    bad = []
    states = collections.Counter()
    root = ET.parse(xml).getroot()
    for port in root.iter("port"):
        pid = port.get("portid")
        st = port.find("state")
        states[st.get("state") if st is not None else "?"] += 1
        sha1 = None
        for script in port.findall("script"):
            if script.get("id") != "ssl-cert":
                continue
            for elem in script.iter("elem"):
                if elem.get("key") == "sha1":
                    sha1 = (elem.text or "").replace(" ", "").lower()
        exp = expected.get(pid)
        if exp and sha1 == exp["sha1"]:
            right += 1
        else:
            wrong += 1
            if len(bad) < 5:
                bad.append(f"port {pid}: sha1={sha1} ({by_sha1.get(sha1, 'no match')}) want {exp and exp['cn']}")
    missing = max(0, n_expected - right - wrong)
    report(label, n_expected, right, wrong, missing, [f"port states: {dict(states)}"] + bad, summary_file)


def check_openssl(args):
    expected = json.load(open(args[0]))
    out, n_expected, label = args[1], int(args[2]), args[3]
    summary_file = args[4] if len(args) > 4 else None
    right = wrong = 0
    bad = []
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            port, digest = parts[0], parts[1]
            exp = expected.get(port)
            if exp and digest == exp["sha256"]:
                right += 1
            else:
                wrong += 1
                if len(bad) < 5:
                    bad.append(f"port {port}: {digest}")
    missing = max(0, n_expected - right - wrong)
    report(label, n_expected, right, wrong, missing, bad, summary_file)


def cpu_seconds(args):
    """utime+stime of a pid and its children (nginx master and workers), in seconds."""
    root = int(args[0])
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        pid, ppid = int(d), int(fields[1])
        if pid == root or ppid == root:
            total += int(fields[11]) + int(fields[12])
    print(f"{total / tick:.2f}")


def table(args):
    rows = [line.rstrip("\n").split("\t") for line in open(args[0]) if line.strip()]
    header = ["tool / run", "targets", "wall s (median)", "endpoints/s", "client CPU s",
              "nginx CPU s", "other CPU s", "endpoints/CPU-s", "right", "wrong", "missing",
              "peak RSS MiB"]
    for r in rows:
        # endpoints per CPU second of client + server: less sensitive to other load than endpoints/s
        try:
            r.insert(7, f"{int(r[1]) / (float(r[4]) + float(r[5])):.0f}")
        except (ValueError, ZeroDivisionError):
            r.insert(7, "n/a")
    rows = [header] + rows
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(len(header))]
    for k, r in enumerate(rows):
        print("  " + "  ".join((r[i] if i < len(r) else "").ljust(widths[i]) for i in range(len(header))).rstrip())
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))


def median(args):
    vals = [float(x) for x in args]
    print(f"{statistics.median(vals):.3f}")


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    {
        "nginx-conf": nginx_conf,
        "wait-ready": wait_ready,
        "targets": targets,
        "check-certfleet": check_certfleet,
        "check-nmap": check_nmap,
        "check-openssl": check_openssl,
        "cpu-seconds": cpu_seconds,
        "table": table,
        "median": median,
    }[cmd](rest)
