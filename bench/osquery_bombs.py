#!/usr/bin/env python3
"""Peak RSS of `certfleet serve` under hostile osquery logger posts (issue 13, item 2).

A benchmark, not a test (CI never runs it; the end-to-end test with the same bombs is
`tests/system/osquery.rs`). Stdlib only.

Usage:
  bench/osquery_bombs.py [--binary target/debug/certfleet] [--rounds 3] [--concurrency 8]
                         [--bombs zeros,entries,string,plain]

It starts `certfleet serve --roles api` on a fresh SQLite database in a temporary folder
with an osquery enroll secret, enrolls one node, then ROUNDS times posts CONCURRENCY
hostile bodies at once to `POST /api/v1/osquery/log`, cycling through:

  zeros     gzip of `{"data":[0,0,...]}` (16 MiB decompressed, about 16 KiB sent)
  entries   gzip of `{"log_type":"result","data":[{...listening_ports event...}, ...]}`
            (about 30 MiB decompressed of small, valid-looking entries)
  string    gzip of `{"node_key":"aaaa..."}`: one 30 MiB JSON string
  plain     the entries bomb not compressed, cut under the 8 MiB limit as sent

each without a key, with a wrong key in the body or in `Authorization: NodeKey`, and
with the valid node key in the body or in the header. It prints every status, then the
service's peak RSS (`VmHWM` of /proc/PID/status) before and after, and checks that a good
log post is still stored.
"""
import argparse
import gzip
import http.client
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

SECRET = "bench-osquery-secret"


def gz(data):
    return gzip.compress(data, compresslevel=6)


def bombs():
    zeros = b'{"data":[' + b",".join([b"0"] * (8 * 1024 * 1024)) + b"]}"
    entry = json.dumps({"name": "listening_ports", "hostIdentifier": "h", "action": "added",
                        "columns": {"port": "443", "protocol": "6", "family": "2",
                                    "address": "10.1.2.3", "net_namespace": "1"}}).encode()
    count = 30 * 1024 * 1024 // (len(entry) + 1)
    entries = b'{"log_type":"result","data":[' + b",".join([entry] * count) + b"]}"
    string = b'{"node_key":"' + b"a" * (30 * 1024 * 1024) + b'"}'
    plain = entries[:8 * 1024 * 1024 - 4096]
    plain = plain[:plain.rindex(b"},{") + 1] + b"]}"
    # name: (JSON text, sent gzip-compressed)
    return {"zeros": (zeros, True), "entries": (entries, True), "string": (string, True),
            "plain": (plain, False)}


def with_key(raw, key):
    """The bomb's JSON text with `"node_key": KEY` put first."""
    if raw.startswith(b'{"node_key"'):
        return raw
    return b'{"node_key":' + json.dumps(key).encode() + b"," + raw[1:]


def status(path):
    fields = {}
    for line in open(path):
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def post(address, path, body, headers):
    connection = http.client.HTTPConnection(*address, timeout=300)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()[:200]
    except OSError as error:
        return None, str(error).encode()
    finally:
        connection.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/debug/certfleet")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--bombs", default="zeros,entries,string,plain",
                        help="which bombs, comma-separated")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="osquery-bombs-")
    config = os.path.join(tmp, "certfleet.toml")
    with open(config, "w") as f:
        f.write(f'[database]\nurl = "sqlite://{tmp}/certfleet.db"\n\n'
                f'[server]\nlisten = "127.0.0.1:0"\n\n'
                f'[notify]\noutbox_dir = "{tmp}/outbox"\n\n'
                f'[osquery]\nenroll_secret = "{SECRET}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTFLEET_")}
    env["RUST_LOG"] = "warn"
    log = open(os.path.join(tmp, "serve.log"), "w")
    serve = subprocess.Popen([args.binary, "serve", "--config", config, "--roles", "api"],
                             stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    try:
        address = None
        for line in serve.stdout:
            if line.startswith("certfleet: listening on http://"):
                host, port = line.strip().rsplit("/", 1)[1].rsplit(":", 1)
                address = (host, int(port))
                break
        if address is None:
            sys.exit(f"certfleet serve did not start; log in {tmp}/serve.log")
        threading.Thread(target=lambda: [None for _ in serve.stdout], daemon=True).start()
        proc = f"/proc/{serve.pid}/status"
        print(f"binary: {args.binary}")
        print(f"idle: VmHWM {status(proc)['VmHWM']}, VmRSS {status(proc)['VmRSS']}")

        enroll = json.dumps({"enroll_secret": SECRET, "host_identifier": "bench-host"})
        code, body = post(address, "/api/v1/osquery/enroll", enroll,
                          {"Content-Type": "application/json"})
        node_key = json.loads(body)["node_key"]

        made = {name: body for name, body in bombs().items()
                if name in args.bombs.split(",")}
        credentials = [("no key", None, False), ("wrong key", "wrong-key", False),
                       ("wrong key in header", "wrong-key", True),
                       ("valid key in body", node_key, False),
                       ("valid key in header", node_key, True)]
        cases = list(itertools.product(made.items(), credentials))
        prepared = []
        for (name, (raw, compressed)), (who, key, in_header) in cases:
            headers = {"Content-Type": "application/json"}
            if in_header:
                headers["Authorization"] = f"NodeKey {key}"
            elif key is not None:
                raw = with_key(raw, key)
            body = raw
            if compressed:
                headers["Content-Encoding"] = "gzip"
                body = gz(raw)
            prepared.append((f"{name}, {who}", body, headers))
        sizes = ", ".join(f"{name} {len(gz(raw) if c else raw) // 1024} KiB"
                          for name, (raw, c) in made.items())
        print(f"bombs as sent: {sizes}")

        jobs = itertools.cycle(prepared)
        for round_ in range(args.rounds):
            batch = [next(jobs) for _ in range(args.concurrency)]
            results = [None] * len(batch)

            def run(i, job):
                results[i] = post(address, "/api/v1/osquery/log", job[1], job[2])

            threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(batch)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for (label, _, _), (code, text) in zip(batch, results):
                print(f"  round {round_ + 1}: {label:32} -> {code} {text.decode(errors='replace')[:90]}")
            if serve.poll() is not None:
                sys.exit(f"certfleet serve exited ({serve.returncode}); log in {tmp}/serve.log")
            print(f"after round {round_ + 1}: VmHWM {status(proc)['VmHWM']}")

        good = json.dumps({"node_key": node_key, "log_type": "result", "data": [
            {"name": "listening_ports", "action": "snapshot", "snapshot": [
                {"port": "8443", "protocol": "6", "family": "2", "address": "10.0.0.5"}]}]})
        code, text = post(address, "/api/v1/osquery/log", good,
                          {"Content-Type": "application/json"})
        print(f"good post afterwards: {code} {text.decode(errors='replace')}")
        print(f"PEAK RSS (VmHWM): {status(proc)['VmHWM']}")
    finally:
        serve.kill()
        serve.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
