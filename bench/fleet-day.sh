#!/usr/bin/env bash
# The seed fleet's day on one PostgreSQL, end to end: every host reports twice a day (a tenth
# of its sockets moved the second time), the day's new certificates are recorded through the
# store's real lease-and-record path (synthetic probe results: no TLS server is needed for a
# million certificates), notifications are decided and sent (digest files on tmpfs), the
# overview and 1,000 hostname and 1,000 serial lookups run, retention runs; the driver
# vacuums between stages, as autovacuum would over a real day's hours. Prints each
# stage's wall time and rate, the database size per day (`storage: day 1 X MiB, ...`), then
# checks its invariants and ends with `N passed, M failed` (exit 1 on any failure).
#
#   SCALE=1 DAYS=3 bench/fleet-day.sh     100,000 hosts, 3,000,000 sockets, 700,000 new
#                                         certificates a day, 7,000 apps (about 10 GB)
#   SCALE=0.01 DAYS=3 bench/fleet-day.sh  the quick check (a few minutes)
#   RETENTION_DAYS=1 (default)            every retention window, in simulated days: short,
#                                         so that a few days reach the steady state
#
# Needs PostgreSQL at CERTFLEET_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/
# postgres). The driver (notifier/examples/fleet_day/) makes its own database and drops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${SCALE:-0.01}"
days="${DAYS:-3}"
retention="${RETENTION_DAYS:-1}"
postgres="${CERTFLEET_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

cargo build --release --quiet -p certfleet-notifier --example fleet_day
if [ -d /dev/shm ] && [ -w /dev/shm ]; then outbox="$(mktemp -d -p /dev/shm)"; else outbox="$(mktemp -d)"; fi
trap 'rm -rf "$outbox"' EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(psql --version | head -1)"
echo "command: SCALE=$scale DAYS=$days RETENTION_DAYS=$retention bench/fleet-day.sh ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
/usr/bin/time -f "driver: %e s wall, %U s user, %S s system, %M KiB peak RSS" \
  target/release/examples/fleet_day --postgres "$postgres" --scale "$scale" --days "$days" \
  --retention-days "$retention" --outbox "$outbox"
