#!/usr/bin/env python3
"""Peak RSS of `certfleet serve` under hostile agent reports (issue 13): the same shape as
bench/osquery_bombs.py, for `POST /api/v1/reports`. A benchmark, not a test.

Usage: bench/report_bombs.py [--binary target/debug/certfleet] [--rounds 3] [--concurrency 8]
                             [--bombs sockets,reachable,zeros] [--who 'no token,token']

It starts `certfleet serve --roles api` on SQLite, creates an agent token, then ROUNDS
times posts CONCURRENCY bodies at once, cycling through these bombs, each without a token
and with the valid one:

  sockets    gzip of a report with 400,000 minimal sockets (the limit is 20,000)
  reachable  gzip of a report with 20,000 sockets of 256 reachable addresses each, just
             under the 16 MiB decompressed limit: the most a report may make the service
             build before validation
  zeros      gzip of 32 MiB of `{"sockets":[0,0,...` (a type error at the first entry)

It prints every answer and the service's peak RSS (VmHWM) before and after.
"""
import argparse
import gzip
import http.client
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading


def report(sockets):
    head = (b'{"agent":{"version":"0.1.0"},"collected_at":"2026-11-27T10:00:00Z",'
            b'"host":{"hostname":"bomb","machine_id":"bomb","addresses":["10.0.0.5"]},'
            b'"sockets":[')
    return head + sockets + b"]}"


def bombs():
    minimal = b'{"address":"::","port":1,"protocol":"tcp","scope":"host"}'
    many = report(b",".join([minimal] * 400_000))
    addresses = b",".join(b'"::%x"' % (i + 2) for i in range(256))
    wide = b'{"address":"::","port":1,"protocol":"tcp","scope":"host","reachable":[' + addresses + b"]}"
    count = min(20_000, (15 * 1024 * 1024) // (len(wide) + 1))
    reachable = report(b",".join([wide] * count))
    zeros = b'{"sockets":[' + b",".join([b"0"] * (16 * 1024 * 1024 - 8)) + b"]}"
    return {"sockets": many, "reachable": reachable, "zeros": zeros}


def vm(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return "?"


def post(address, body, headers):
    connection = http.client.HTTPConnection(*address, timeout=300)
    try:
        connection.request("POST", "/api/v1/reports", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()[:120]
    except OSError as error:
        return None, str(error).encode()
    finally:
        connection.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/debug/certfleet")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--bombs", default="sockets,reachable,zeros")
    parser.add_argument("--who", default="no token,token")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="report-bombs-")
    config = os.path.join(tmp, "certfleet.toml")
    with open(config, "w") as f:
        f.write(f'[database]\nurl = "sqlite://{tmp}/certfleet.db"\n\n'
                f'[server]\nlisten = "127.0.0.1:0"\n\n[notify]\noutbox_dir = "{tmp}/outbox"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTFLEET_")}
    env["RUST_LOG"] = "warn"
    made = subprocess.run([args.binary, "token", "create", "--config", config, "--agent", "bombs"],
                          capture_output=True, text=True, env=env, check=True)
    token = made.stdout.strip().splitlines()[-1]
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
        print(f"binary: {args.binary}\nidle: VmHWM {vm(serve.pid, 'VmHWM')}")
        prepared = []
        chosen = {n: b for n, b in bombs().items() if n in args.bombs.split(",")}
        for (name, raw), who in itertools.product(chosen.items(), args.who.split(",")):
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
            if who == "token":
                headers["Authorization"] = f"Bearer {token}"
            prepared.append((f"{name}, {who}", gzip.compress(raw, 6), headers))
        print("bombs as sent: " + ", ".join(f"{label} {len(body) // 1024} KiB"
                                             for label, body, _ in prepared))
        jobs = itertools.cycle(prepared)
        for round_ in range(args.rounds):
            batch = [next(jobs) for _ in range(args.concurrency)]
            results = [None] * len(batch)

            def run(i, job):
                results[i] = post(address, job[1], job[2])

            threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(batch)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for (label, _, _), (code, text) in zip(batch, results):
                print(f"  round {round_ + 1}: {label:22} -> {code} {text.decode(errors='replace')[:80]}")
            if serve.poll() is not None:
                sys.exit(f"certfleet serve exited ({serve.returncode}); log in {tmp}/serve.log")
            print(f"after round {round_ + 1}: VmHWM {vm(serve.pid, 'VmHWM')}")
        print(f"PEAK RSS (VmHWM): {vm(serve.pid, 'VmHWM')}")
    finally:
        serve.kill()
        serve.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
