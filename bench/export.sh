#!/usr/bin/env bash
# `certfleet export` at fleet size (issue 16): rows per second and peak RSS exporting
# 1,000,000 certificates and 3,000,000 endpoints from PostgreSQL, as JSON lines and CSV.
# Uses bench/lookup.sh's database (seed it first: bench/lookup.sh, about 4 min).
#
#   bench/export.sh                 # CERTFLEET_BIN=/path/to/certfleet to measure another build
# Output goes to /dev/null through `wc -c` (bytes counted); nothing is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_ADMIN_URL="${CERTFLEET_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB_URL="${PG_ADMIN_URL%/*}/certfleet_bench_lookup"
if [ -z "${CERTFLEET_BIN:-}" ]; then cargo build --release -p certfleet >/dev/null; fi
BIN="${CERTFLEET_BIN:-target/release/certfleet}"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (Debian package time)" >&2; exit 1; }
[ "$(psql "$DB_URL" -Atc 'SELECT count(*) FROM certificates' 2>/dev/null || echo 0)" = 1000000 ] \
  || { echo "seed the database first: bench/lookup.sh" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
printf '[database]\nurl = "%s"\n' "$DB_URL" > "$WORK/certfleet.toml"

for what in certificates endpoints; do
  rows=$(psql "$DB_URL" -Atc "SELECT count(*) FROM $what")
  for format in jsonl csv; do
    start=$(date +%s%N)
    bytes=$( { /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" export "$what" --format "$format" \
               --config "$WORK/certfleet.toml"; } | wc -c)
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    printf "%-13s %-6s rows %8s  %6.1f s  %8.0f rows/s  %6.0f MiB out  peak RSS %5.1f MiB\n" \
      "$what" "$format" "$rows" "$(echo "$ms / 1000" | bc -l)" "$(echo "$rows * 1000 / $ms" | bc -l)" \
      "$(echo "$bytes / 1048576" | bc -l)" "$(echo "$(cat "$WORK/rss") / 1024" | bc -l)"
  done
done
