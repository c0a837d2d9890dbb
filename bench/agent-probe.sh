#!/usr/bin/env bash
# Agent-side probing (`agent.probe_local`): one pass of the certfleet agent
# (`certfleet agent --print`, release build) with LISTENERS loopback-only TLS listeners
# (`openssl s_server -accept 127.0.0.1:PORT`, one process each, an EC P-256 self-signed
# certificate), with and without local probing, in the same run: CPU time (user + system,
# mean of RUNS runs), peak RSS and wall time per pass. The host's own loopback listeners
# are probed too; the count is printed. Goal: under 100 ms CPU and 16 MiB per pass.
# Not run by CI. Stops the servers it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-10}"
LISTENERS="${LISTENERS:-100}"
FIRST_PORT="${FIRST_PORT:-42100}"
cargo build --release -q -p certfleet
BIN="$PWD/target/release/certfleet"
WORK="$(mktemp -d)"
SERVER_PIDS=()

cleanup() {
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

source bench/measure.sh

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=local.bench" -addext "subjectAltName=DNS:local.bench" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
for port in $(seq "$FIRST_PORT" $((FIRST_PORT + LISTENERS - 1))); do
  openssl s_server -quiet -accept "127.0.0.1:$port" -cert "$WORK/cert.pem" \
    -key "$WORK/key.pem" </dev/zero >/dev/null 2>&1 &
  SERVER_PIDS+=("$!")
done
for port in $(seq "$FIRST_PORT" $((FIRST_PORT + LISTENERS - 1))); do
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
done

export CERTFLEET_AGENT__PROBE_CONCURRENCY="${CONCURRENCY:-2}"
probed=$(CERTFLEET_AGENT__PROBE_LOCAL=true "$BIN" agent --print 2>/dev/null \
  | python3 -c 'import json,sys; p=json.load(sys.stdin).get("probes",[]); print(len(p), "probes,", sum(r["status"]=="ok" for r in p), "ok")')
echo "host: $(nproc) cores, $(uname -r); runs per figure: $RUNS; $LISTENERS loopback TLS listeners started; one pass: $probed; probe_concurrency $CERTFLEET_AGENT__PROBE_CONCURRENCY"
measure "certfleet agent --print (probe_local off)" "$BIN" agent --print
CERTFLEET_AGENT__PROBE_LOCAL=true measure "certfleet agent --print (probe_local on)" "$BIN" agent --print
