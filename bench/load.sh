#!/usr/bin/env bash
# Load: CERTFLEET_LOAD_AGENTS simulated hosts (default 2,000) post their reports at once to
# one real `certfleet serve` with every role, on a fresh PostgreSQL database, while its
# probers probe the loopback TLS endpoints the reports name and a reader pages through
# /api/v1/endpoints and /api/v1/certificates. Prints the accept rate (reports/s), report
# latency p50/p95/p99/max, answers by status, and the reads' figures; the test itself
# checks that every accepted report's sockets are in the store, once.
#
#   bench/load.sh                                   # 2,000 hosts, 32 reports in flight
#   CERTFLEET_LOAD_AGENTS=5000 CERTFLEET_LOAD_CONCURRENCY=64 bench/load.sh
#
# Needs PostgreSQL at CERTFLEET_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/
# postgres; scripts/test starts it). Loopback only. Debug build (the test binary's), as the
# test suite runs it: a release build is faster.
set -euo pipefail
cd "$(dirname "$0")/.."
export CERTFLEET_LOAD_AGENTS="${CERTFLEET_LOAD_AGENTS:-2000}"
export CERTFLEET_LOAD_CONCURRENCY="${CERTFLEET_LOAD_CONCURRENCY:-32}"
profile=()
if [ "${RELEASE:-0}" = 1 ]; then profile=(--release); fi
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $(psql --version | head -1)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test "${profile[@]}" -p certfleet-tests --test system -- --exact \
  serve::load::many_agents_report_at_once_while_probers_and_readers_run_and_nothing_is_lost \
  --nocapture >"$log" 2>&1
status=$?
set -e
grep -E '^load:|^test result' "$log" || true
if [ "$status" != 0 ]; then tail -60 "$log"; fi
exit "$status"
