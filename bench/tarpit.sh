#!/usr/bin/env bash
# Tarpit: how long 100 good TLS endpoints take to be probed and recorded when they are
# reported right after one address with 2,000 tarpit ports (accepted, never answered), by
# one real `certfleet serve --roles api,prober` on SQLite (probe timeout 2 s, the other
# probe settings at their defaults: 256 in flight, 16 per address, batches of 500).
# The test behind it (serve::tarpit) asserts the order; this prints its figure line:
#
#   tarpit: 100 good endpoints recorded in T s beside 2000 tarpit ports on one address
#           (N tarpit endpoints recorded by then, C connections accepted)
#
#   bench/tarpit.sh              # debug build, as the test suite runs it
#   RELEASE=1 bench/tarpit.sh    # release build
#   RUNS=3 bench/tarpit.sh       # several runs, one figure line each
#
# Loopback only (127.0.0.1 and 127.0.0.2); needs about 5,000 open files (ulimit -n).
set -uo pipefail
cd "$(dirname "$0")/.."
profile=()
if [ "${RELEASE:-0}" = 1 ]; then profile=(--release); fi
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); ulimit -n $(ulimit -n); $(git rev-parse --short HEAD 2>/dev/null)"
nice -n 10 cargo test "${profile[@]}" -p certfleet-tests --test system --no-run 2>&1 | tail -1
# The test builds the binary on its first use; built here, that stays out of the figure.
nice -n 10 cargo build "${profile[@]}" -p certfleet --bin certfleet 2>&1 | tail -1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
for run in $(seq "${RUNS:-1}"); do
  cargo test "${profile[@]}" -p certfleet-tests --test system -- --exact \
    serve::tarpit::a_tarpit_address_does_not_hold_up_the_rest_of_the_fleet \
    --nocapture >"$log" 2>&1 || status=$?
  echo "run $run: $(grep -E '^tarpit:' "$log" || echo 'no figure')"
  grep -E '^test result' "$log" || true
done
if [ "$status" != 0 ]; then grep -E 'panicked|waited behind|not all recorded' -A2 "$log" | head -20; fi
exit "$status"
