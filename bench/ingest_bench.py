#!/usr/bin/env python3
"""Driver for bench/ingest.sh (stdlib only; a benchmark, never run by CI).

Subcommands:
  wait-line FILE PREFIX SECONDS
      print what follows PREFIX on the first line of FILE that starts with it
  nginx-conf DIR PORTS BASE_PORT ADDRS WORKERS
      DIR/nginx.conf serving DIR/leaves.json's leaves, DIR/expected.json (port -> leaf
      SHA-256) and DIR/targets.txt (one 127.0.0.A:PORT per line)
  wait-ready PORTS BASE_PORT ADDRS SECONDS
      wait until the first and last listeners accept
  ingest URL TOKEN REPORTS SOCKETS CONCURRENCY GZIP SERVE_PID ROUNDS
      ROUNDS times: POST REPORTS reports of SOCKETS sockets (new hosts each round, one
      host per report), CONCURRENCY at a time, then the same reports again; print
      sockets/s, and the CPU certfleet (SERVE_PID) and PostgreSQL (every `postgres`
      process; backends that exited are not counted) used
  post-targets URL TOKEN PORTS BASE_PORT ADDRS
      POST one report per loopback address listing the nginx endpoints
  compare CERTFLEET CONFIG DB_URL DIR REPEAT CONCURRENCY TIMEOUT
      alternately run `certfleet probe -f targets.txt` and `certfleet serve --roles
      prober` (until every endpoint is recorded) REPEAT times; check every leaf; print
      endpoints/s for both and the ratio
"""
import collections
import gzip
import http.client
import json
import re
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def wait_line(path, prefix, seconds):
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        try:
            for line in open(path):
                if line.startswith(prefix):
                    print(line[len(prefix):].strip())
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    sys.exit(f"no line starting with {prefix!r} in {path} after {seconds}s")


def nginx_conf(directory, ports, base, addrs, workers):
    ports, base, addrs, workers = int(ports), int(base), int(addrs), int(workers)
    leaves = json.load(open(os.path.join(directory, "leaves.json")))
    blocks = {i: [] for i in range(len(leaves))}
    expected = {}
    for i in range(ports):
        blocks[i % len(leaves)].append(base + i)
        expected[str(base + i)] = leaves[i % len(leaves)]["sha256"]
    listeners = ports * addrs
    lines = [
        f"worker_processes {workers};",
        f"worker_rlimit_nofile {listeners + 16384};",
        f"pid {directory}/nginx.pid;",
        f"error_log {directory}/nginx-error.log warn;",
        "daemon off;",
        f"events {{ worker_connections {listeners + 8192}; }}",
        "http {",
        "  access_log off;",
        "  ssl_protocols TLSv1.2 TLSv1.3;",
    ]
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        lines.append(f"  {kind}_temp_path {directory}/nginx-tmp/{kind};")
    for index, leaf in enumerate(leaves):
        lines.append("  server {")
        for port in blocks[index]:
            for a in range(1, addrs + 1):
                lines.append(f"    listen 127.0.0.{a}:{port} ssl;")
        lines.append(f"    ssl_certificate {leaf['chain']};")
        lines.append(f"    ssl_certificate_key {leaf['key']};")
        lines.append("    return 204;")
        lines.append("  }")
    lines.append("}")
    with open(os.path.join(directory, "nginx.conf"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(directory, "expected.json"), "w") as f:
        json.dump(expected, f)
    with open(os.path.join(directory, "targets.txt"), "w") as f:
        for a in range(1, addrs + 1):
            for i in range(ports):
                f.write(f"127.0.0.{a}:{base + i}\n")
    print(f"nginx: {len(leaves)} leaves, {listeners} listeners ({ports} ports x {addrs} addresses)")


def wait_ready(ports, base, addrs, seconds):
    ports, base, addrs = int(ports), int(base), int(addrs)
    pending = [(f"127.0.0.{a}", p) for a in (1, addrs) for p in (base, base + ports - 1)]
    end = time.monotonic() + float(seconds)
    while pending and time.monotonic() < end:
        still = []
        for address in pending:
            try:
                socket.create_connection(address, timeout=1).close()
            except OSError:
                still.append(address)
        pending = still
        if pending:
            time.sleep(0.05)
    if pending:
        sys.exit(f"not listening: {pending}")


def report(host, sockets, address_of, port_of):
    """An agent report (the contract) from one host; every socket its own endpoint. The
    containers' addresses are listed in namespace_addresses, as the agent sends them: a
    socket may only claim its host's addresses (an older service ignores the field)."""
    own = address_of(host, 0)
    containers = sorted({address_of(host, k) for k in range(sockets)} - {own})
    return {
        "agent": {"version": "0.1.0"},
        "collected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {
            "hostname": f"bench-host-{host:05d}",
            "machine_id": f"bench-machine-{host:05d}",
            "addresses": [own],
            "namespace_addresses": containers,
            "tags": {"app": f"app-{host % 50}", "env": "prod", "owner": "team@example.com"},
        },
        "sockets": [
            {
                "address": "0.0.0.0", "port": port_of(host, k), "protocol": "tcp",
                "netns": 4026531840 + k // 100, "process": "java",
                "container": f"container-{k // 100}", "reachable": [address_of(host, k)],
                "scope": "host",
            }
            for k in range(sockets)
        ],
    }


def post_all(url, token, bodies, concurrency, gzipped):
    """POSTs every body (CONCURRENCY keep-alive connections); returns (wall, latencies, answers)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    queue = list(range(len(bodies)))
    lock = threading.Lock()
    latencies, answers = [], []

    def worker():
        connection = http.client.HTTPConnection(host, int(port), timeout=300)
        while True:
            with lock:
                if not queue:
                    break
                index = queue.pop(0)
            start = time.monotonic()
            connection.request("POST", "/api/v1/reports", body=bodies[index], headers=headers)
            response = connection.getresponse()
            body = response.read()
            elapsed = time.monotonic() - start
            with lock:
                latencies.append(elapsed)
                answers.append((response.status, body))
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(int(concurrency))]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - start, latencies, answers


def postgres_cpu_seconds():
    """CPU of the benchmark's private PostgreSQL (BENCH_PG_PID and its children), or of
    every `postgres` process on the machine. Backends that exited are not counted. None
    with BENCH_NO_PG (the SQLite runs: other people's PostgreSQL is not ours)."""
    if os.environ.get("BENCH_NO_PG"):
        return 0.0
    postmaster = int(os.environ.get("BENCH_PG_PID") or 0)
    total = cpu_seconds(postmaster) if postmaster else 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
            if postmaster:
                counted = int(stat[1]) == postmaster
            else:
                counted = open(f"/proc/{name}/comm").read().strip() == "postgres"
        except (OSError, IndexError):
            continue
        if counted:
            total += cpu_seconds(int(name))
    return total


def ingest(url, token, reports, sockets, concurrency, gzipped, serve_pid, rounds):
    reports, sockets, gzipped = int(reports), int(sockets), gzipped == "1"
    serve_pid, rounds = int(serve_pid), int(rounds)

    def address_of(host, k):  # 100 addresses per host, 10.0.0.0/8, no two hosts share one
        n = 0x0A000000 + host * 1024 + k // 100
        return ".".join(str((n >> shift) & 255) for shift in (24, 16, 8, 0))

    def port_of(host, k):
        return 8000 + k % 100

    keep_postgres_niced()
    print(f"{rounds} rounds of {reports} reports x {sockets} sockets (new hosts each round, "
          f"posted twice){' gzip' if gzipped else ''}, {concurrency} concurrent clients")
    total = reports * sockets
    rates = {"new": [], "refresh": []}
    for round_ in range(1, rounds + 1):
        bodies = []
        for host in range((round_ - 1) * reports, round_ * reports):
            body = json.dumps(report(host, sockets, address_of, port_of), separators=(",", ":"))
            body = body.encode()
            bodies.append(gzip.compress(body, 1) if gzipped else body)
        size = sum(len(b) for b in bodies) / len(bodies)
        for kind in ("new", "refresh"):
            before = (cpu_seconds(serve_pid), postgres_cpu_seconds(), busy_seconds())
            processes = cpu_by_process()
            wall, latencies, answers = post_all(url, token, bodies, concurrency, gzipped)
            serve_cpu, pg_cpu, busy = (
                after - first for after, first in
                zip((cpu_seconds(serve_pid), postgres_cpu_seconds(), busy_seconds()), before))
            bad = [(status, body[:200]) for status, body in answers if status != 202]
            if bad:
                sys.exit(f"ingest failed: {bad[:3]}")
            counted = sum(json.loads(body)["sockets"] for _, body in answers)
            assert counted == total, (counted, total)
            latencies.sort()
            p50 = statistics.median(latencies)
            p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
            rates[kind].append(total / wall)
            per_socket = (serve_cpu + pg_cpu) / total
            print(f"  round {round_} {kind:7}: {total} sockets ({size / 1e6:.2f} MB reports) in "
                  f"{wall:.2f}s = {total / wall:,.0f} sockets/s, latency p50 {p50 * 1000:.0f} ms "
                  f"p95 {p95 * 1000:.0f} ms; CPU certfleet {serve_cpu:.2f}s + PostgreSQL "
                  f"{pg_cpu:.2f}s = {per_socket * 1e6:.1f} us/socket; machine busy {busy:.2f} "
                  f"of {os.cpu_count() * wall:.2f} CPU-s")
            print(f"    CPU by command: {cpu_by_command(processes)}")
    for kind, label in (("new", "new hosts and endpoints"), ("refresh", "same reports again")):
        print(f"INGEST {label}: median {statistics.median(rates[kind]):,.0f} sockets/s, "
              f"best {max(rates[kind]):,.0f} sockets/s ({rounds} rounds of {total} sockets)")


def post_targets(url, token, ports, base, addrs):
    ports, base, addrs = int(ports), int(base), int(addrs)
    bodies = []
    for a in range(1, addrs + 1):
        one = report(a, ports, lambda host, k: f"127.0.0.{host}", lambda host, k: base + k)
        bodies.append(json.dumps(one).encode())
    _, _, answers = post_all(url, token, bodies, 1, False)
    assert all(status == 202 for status, _ in answers), answers
    print(f"reported {ports * addrs} endpoints from {addrs} hosts")


class Psql:
    """One long-lived psql, so that polling costs a query, not a process."""

    def __init__(self, url):
        self.process = subprocess.Popen(
            ["psql", url, "-X", "-At", "-q", "-v", "ON_ERROR_STOP=1", "-F", "\t"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def rows(self, sql):
        marker = "--end--"
        self.process.stdin.write(f"{sql};\nSELECT '{marker}';\n")
        self.process.stdin.flush()
        rows = []
        while True:
            line = self.process.stdout.readline()
            if not line:
                sys.exit(f"psql died on: {sql}")
            if line.strip() == marker:
                return rows
            if line.strip():
                rows.append(line.rstrip("\n").split("\t"))


def cpu_seconds(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError):
        return 0.0


def keep_postgres_niced():
    """Starts a thread that keeps the private PostgreSQL (BENCH_PG_PID) at BENCH_NICE.
    PostgreSQL puts the postmaster (pg_ctl) and every backend in a session, so an
    autogroup, of its own at nice 0, where other people's builds get as much CPU as it;
    the thread lowers the nice of each new one (checked every 50 ms)."""
    postmaster = int(os.environ.get("BENCH_PG_PID") or 0)
    nice = int(os.environ.get("BENCH_NICE") or 0)
    if not postmaster or not nice:
        return
    done = set()

    def renice_new():
        try:
            children = open(f"/proc/{postmaster}/task/{postmaster}/children").read().split()
        except OSError:
            return
        for pid in [postmaster] + [int(child) for child in children]:
            if pid in done:
                continue
            done.add(pid)
            try:
                with open(f"/proc/{pid}/autogroup", "w") as autogroup:
                    autogroup.write(str(nice))
                os.setpriority(os.PRIO_PROCESS, pid, nice)
            except OSError:
                pass

    def loop():
        while True:
            renice_new()
            time.sleep(0.05)

    renice_new()
    threading.Thread(target=loop, daemon=True).start()


def cpu_by_process():
    """{pid: (command, CPU seconds)} of every process now."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                text = open(f"/proc/{name}/stat").read()
                command = text[text.index("(") + 1:text.rindex(")")]
                table[int(name)] = (command, cpu_seconds(int(name)))
            except (OSError, ValueError):
                pass
    return table


def cpu_by_command(before):
    """CPU seconds used since `before` (a cpu_by_process()), by command, largest first,
    as text: where a run's CPU went, ours and other people's (processes that exited
    in between, such as the certfleet measured, are missing)."""
    used = collections.Counter()
    for pid, (command, seconds) in cpu_by_process().items():
        first = before.get(pid)
        # kernel workers rename themselves after their current work item
        command = "kworker" if command.startswith("kworker") else command
        used[command] += seconds - (first[1] if first else 0.0)
    return ", ".join(f"{command} {seconds:.2f}s" for command, seconds in used.most_common(6)
                     if seconds >= 0.05)


def busy_seconds():
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


def child_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("CERTFLEET_")}


def probe_alone(certfleet, directory, expected, concurrency, timeout):
    out_path = os.path.join(directory, "probe-out.jsonl")
    before, busy = os.times(), busy_seconds()
    start = time.monotonic()
    with open(out_path, "w") as out:
        subprocess.run([certfleet, "probe", "-f", os.path.join(directory, "round.txt"),
                        "--format", "json", "--concurrency", concurrency, "--timeout", timeout],
                       stdout=out, stderr=subprocess.DEVNULL, env=child_env(), check=True)
    wall = time.monotonic() - start
    after = os.times()
    cpu = after.children_user + after.children_system - before.children_user - before.children_system
    right = 0
    wrong = collections.Counter()
    for line in open(out_path):
        result = json.loads(line)
        port = result["target"].split("@")[0].rsplit(":", 1)[1]
        chain = result.get("chain") or [{}]
        ok = result["status"] == "ok" and chain[0].get("sha256") == expected[port]
        right += ok
        if not ok:
            wrong[(result["status"], (result.get("error") or "")[:80])] += 1
    for (status, error), count in wrong.most_common(5):
        print(f"    {count} x {status}: {error}")
    return wall, right, f"{cpu:.2f}s", busy_seconds() - busy


def pipeline(certfleet, config, psql, directory, expected, total, probers=1):
    psql.rows("UPDATE endpoints SET next_probe_at = now(), lease_owner = NULL, "
              "lease_until = NULL, last_probed_at = NULL, last_status = NULL, failures = 0")
    log_path = os.path.join(directory, f"prober-{probers}-{time.time():.0f}.log")
    log = open(log_path, "w")
    busy, pg_cpu = busy_seconds(), postgres_cpu_seconds()
    start, started_at = time.monotonic(), time.time()
    env = dict(child_env(), RUST_LOG="certfleet=info")
    servers = [subprocess.Popen([certfleet, "serve", "--config", config, "--roles", "prober"],
                                stdout=log, stderr=log, env=env)
               for _ in range(probers)]
    deadline = start + 600
    while True:
        done = int(psql.rows("SELECT count(*) FROM endpoints WHERE last_probed_at IS NOT NULL")[0][0])
        if done >= total:
            break
        if any(s.poll() is not None for s in servers) or time.monotonic() > deadline:
            sys.exit(f"a prober stopped or stalled at {done}/{total}; see {directory}/prober.log")
        time.sleep(0.05)
    wall = time.monotonic() - start
    cpu = sum(cpu_seconds(server.pid) for server in servers)
    busy = busy_seconds() - busy
    pg_cpu = postgres_cpu_seconds() - pg_cpu
    for server in servers:
        server.send_signal(signal.SIGTERM)
    for server in servers:
        server.wait(timeout=60)
    # Probes made, from the probers' "probe round recorded probed=N" lines: equal to the
    # number of endpoints when none was probed twice.
    log.close()
    plain = re.sub(r"\x1b\[[0-9;]*m", "", open(log_path).read())
    probes = sum(int(n) for n in re.findall(r"probe round recorded probed=(\d+)", plain))
    print(f"    {probers} prober process(es): {probes} probes recorded for {total} endpoints"
          f"{'' if probes == total else ' (some probed twice)' if probes > total else ''}")
    rows = psql.rows("SELECT e.port, e.last_status, o.leaf_sha256, e.last_error FROM endpoints e "
                     "LEFT JOIN observations o ON o.id = e.observation_id")
    right = sum(status == "ok" and sha == expected[port] for port, status, sha, _ in rows)
    wrong = collections.Counter(
        (status, error[:80]) for port, status, sha, error in rows
        if not (status == "ok" and sha == expected[port]))
    for (status, error), count in wrong.most_common(5):
        print(f"    {count} x {status}: {error}")
    first, last = (float(x) - started_at for x in psql.rows(
        "SELECT extract(epoch FROM min(last_probed_at)), extract(epoch FROM max(last_probed_at)) "
        "FROM endpoints")[0])
    print(f"    probes started from +{first:.2f}s to +{last:.2f}s; all recorded by +{wall:.2f}s")
    if os.environ.get("BENCH_TIMELINE"):
        buckets = psql.rows(
            f"SELECT floor((extract(epoch FROM last_probed_at) - {started_at}) * 5) / 5, "
            "count(*) FROM endpoints GROUP BY 1 ORDER BY 1")
        print("    probes started per 200 ms: " + " ".join(
            f"+{float(t):.1f}:{n}" for t, n in buckets))
    return wall, right, f"{cpu:.2f}s (PostgreSQL {pg_cpu:.2f}s)", busy


def settle(certfleet, config, psql, directory):
    """One untimed round with one prober, until every endpoint is probed and no new one
    appears for a second: the names to present (host name, certificate name) exist before
    any timed run, so that every run probes the same endpoints. Writes them to round.txt
    (address:port@name) for `certfleet probe`; returns how many there are."""
    psql.rows("UPDATE endpoints SET next_probe_at = now(), lease_owner = NULL, "
              "lease_until = NULL, last_probed_at = NULL")
    log = open(os.path.join(directory, "settle.log"), "w")
    server = subprocess.Popen([certfleet, "serve", "--config", config, "--roles", "prober"],
                              stdout=log, stderr=log, env=child_env())
    deadline, stable_since, last = time.monotonic() + 600, time.monotonic(), -1
    while True:
        total, left = (int(x) for x in psql.rows(
            "SELECT count(*), count(*) FILTER (WHERE last_probed_at IS NULL) FROM endpoints")[0])
        if total != last or left:
            stable_since, last = time.monotonic(), total
        elif time.monotonic() - stable_since > 1.0:
            break
        if server.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the settling round stalled; see {directory}/settle.log")
        time.sleep(0.1)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    rows = psql.rows("SELECT address, port, sni FROM endpoints ORDER BY id")
    with open(os.path.join(directory, "round.txt"), "w") as f:
        for address, port, sni in rows:
            f.write(f"{address}:{port}{'@' + sni if sni else ''}\n")
    named = sum(1 for _, _, sni in rows if sni)
    print(f"  settled: {len(rows)} endpoints ({named} of them named), the set every run probes")
    return len(rows)


def compare(certfleet, config, db_url, directory, repeat, concurrency, timeout, probers="1"):
    expected = json.load(open(os.path.join(directory, "expected.json")))
    psql = Psql(db_url)
    keep_postgres_niced()
    total = settle(certfleet, config, psql, directory)
    alone, piped = [], []
    more = {int(n): [] for n in probers.split() if int(n) > 1}
    for run in range(1, int(repeat) + 1):
        contenders = [
            ("certfleet probe alone   ",
             lambda: probe_alone(certfleet, directory, expected, concurrency, timeout), alone),
            ("serve --roles prober    ",
             lambda: pipeline(certfleet, config, psql, directory, expected, total), piped),
        ] + [
            (f"{n} x serve --roles prober",
             lambda n=n: pipeline(certfleet, config, psql, directory, expected, total, n), walls)
            for n, walls in more.items()
        ]
        for label, measure, walls in contenders:
            processes = cpu_by_process()
            wall, right, cpu, busy = measure()
            by_command = cpu_by_command(processes)
            note = ""
            print(f"  run {run} {label}: {total} endpoints in {wall:.2f}s = {total / wall:,.0f}/s, "
                  f"{right} right, certfleet CPU {cpu}, machine busy {busy:.2f} CPU-s{note}")
            print(f"    CPU by command: {by_command}")
            if right != total:
                print(f"    {total - right} endpoints not ok or with the wrong leaf")
            walls.append(wall)
    alone_rate = total / statistics.median(alone)
    piped_rate = total / statistics.median(piped)
    print(f"PROBE certfleet probe alone: {alone_rate:,.0f} endpoints/s (median of {repeat})")
    print(f"PIPELINE serve --roles prober (leased, probed, recorded): {piped_rate:,.0f} "
          f"endpoints/s (median of {repeat})")
    print(f"PIPELINE/PROBE ratio: {piped_rate / alone_rate:.0%} of the medians (goal >= 70%); "
          f"best runs {total / min(piped):,.0f} vs {total / min(alone):,.0f} endpoints/s = "
          f"{min(alone) / min(piped):.0%}")
    for n, walls in more.items():
        rate = total / statistics.median(walls)
        print(f"SCALE-OUT {n} prober processes on one PostgreSQL: {rate:,.0f} endpoints/s "
              f"(median of {repeat}) = {rate / piped_rate:.2f}x one prober, "
              f"{rate / alone_rate:.0%} of certfleet probe alone")


COMMANDS = {
    "wait-line": wait_line, "nginx-conf": nginx_conf, "wait-ready": wait_ready,
    "ingest": ingest, "post-targets": post_targets, "compare": compare,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
