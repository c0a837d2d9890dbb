#!/usr/bin/env bash
# Lookup and dashboard latency at fleet size (issue 7): 1,000,000 certificates and
# 3,000,000 endpoints in PostgreSQL, `certfleet serve --roles api` in front, wrk as load.
#
#   bench/lookup.sh                  # seeds (about 10 min the first time), then measures
#   RESEED=1 bench/lookup.sh         # drop and seed again
#   DURATION=30s CONNECTIONS=32 bench/lookup.sh
#
# Prints p50/p99 for hostname lookups, serial lookups (pasted as UPPERCASE:COLONS), the
# dashboard, and a few lists. Goals: p99 < 20 ms for lookups, < 200 ms for the dashboard.
# Loopback only; every run is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_ADMIN_URL="${CERTFLEET_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=certfleet_bench_lookup
DB_URL="${PG_ADMIN_URL%/*}/$DB"
DURATION="${DURATION:-20s}"
CONNECTIONS="${CONNECTIONS:-16}"
THREADS="${THREADS:-2}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
command -v wrk >/dev/null || { as_root apt-get update -qq; DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq wrk; }
command -v psql >/dev/null || { echo "needs PostgreSQL (scripts/test installs it)" >&2; exit 1; }

# CERTFLEET_BIN: measure another build (e.g. an older commit's) on the same data.
if [ -z "${CERTFLEET_BIN:-}" ]; then cargo build --release -p certfleet >/dev/null; fi
BIN="${CERTFLEET_BIN:-target/release/certfleet}"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

cat > "$WORK/certfleet.toml" <<TOML
[database]
url = "$DB_URL"
max_connections = 16
TOML

exists=$(psql "$PG_ADMIN_URL" -Atc "SELECT 1 FROM pg_database WHERE datname = '$DB'")
if [ -n "${RESEED:-}" ] || [ "$exists" != 1 ] || \
   [ "$(psql "$DB_URL" -Atc 'SELECT count(*) FROM endpoints' 2>/dev/null || echo 0)" != 3000000 ] || \
   [ "$(psql "$DB_URL" -Atc "SELECT count(*) FROM endpoints WHERE sni = ''" 2>/dev/null || echo 0)" != 1000000 ]; then
  psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  "$BIN" migrate --config "$WORK/certfleet.toml" >/dev/null
  echo "seeding 1,000,000 certificates and 3,000,000 endpoints ..."
  start=$(date +%s)
  psql "$DB_URL" -q -f bench/seed_lookup.sql
  echo "seeded in $(( $(date +%s) - start )) s"
else
  "$BIN" migrate --config "$WORK/certfleet.toml" >/dev/null
fi
psql "$DB_URL" -Atc "SELECT 'certificates ' || count(*) FROM certificates" \
                -Atc "SELECT 'endpoints    ' || count(*) FROM endpoints" \
                -Atc "SELECT 'size         ' || pg_size_pretty(pg_database_size('$DB'))"

# What the clients ask for: 20,000 random host names and serials, the serials spelt the way
# people paste them (upper case, colons, an even number of digits).
psql "$DB_URL" -Atc "SELECT 'svc' || (1 + (random() * 999999)::int) || '.example.com' FROM generate_series(1, 20000)" > "$WORK/hostnames"
psql "$DB_URL" -Atc "SELECT upper(regexp_replace(lpad(serial, length(serial) + length(serial) % 2, '0'), '(..)(?=.)', '\1:', 'g')) FROM certificates TABLESAMPLE SYSTEM (2) LIMIT 20000" > "$WORK/serials"

start_server() {
  "$BIN" serve --config "$WORK/certfleet.toml" --roles api --listen 127.0.0.1:0 > "$WORK/serve.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    grep -q "listening on http://" "$WORK/serve.log" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log"; exit 1; }
    sleep 0.1
  done
  BASE=$(grep -o "http://[0-9.:]*" "$WORK/serve.log" | head -1)
}
# The saved overview of an earlier run would make the first dashboard warm.
psql "$DB_URL" -qc "DELETE FROM overview_snapshot" 2>/dev/null || true
start_server
echo "server at $BASE"

cat > "$WORK/paths.lua" <<'LUA'
local paths = {}
function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = args[2] .. line:gsub(":", "%%3A")
  end
end
local i = 0
function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
LUA

# Prints "name p50 p99 requests/s" from a wrk --latency run.
measure() {
  local name="$1"; shift
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" > "$WORK/wrk.out" 2>&1 || { cat "$WORK/wrk.out"; exit 1; }
  local p50 p99 rps errors
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.out")
  errors=$(grep -E "Non-2xx|Socket errors" "$WORK/wrk.out" | tr '\n' ' ' || true)
  printf "%-34s p50 %-9s p99 %-9s %10s req/s %s\n" "$name" "$p50" "$p99" "$rps" "$errors"
}

echo "warming up (the first dashboard computes the fleet overview) ..."
start=$(date +%s%N)
curl -fsS -o /dev/null "$BASE/"
echo "first dashboard (cold overview, nothing saved): $(( ($(date +%s%N) - start) / 1000000 )) ms"
# A restart: the new process answers with the overview the first one saved.
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
start_server
start=$(date +%s%N)
curl -fsS -o /dev/null "$BASE/"
echo "first dashboard after a restart (saved overview): $(( ($(date +%s%N) - start) / 1000000 )) ms"
wrk -t1 -c4 -d5s -s "$WORK/paths.lua" "$BASE" -- "$WORK/hostnames" "/api/v1/certificates?hostname=" >/dev/null

echo
echo "$CONNECTIONS connections, $THREADS threads, $DURATION per run:"
measure "hostname lookup (API)" -s "$WORK/paths.lua" "$BASE" -- "$WORK/hostnames" "/api/v1/certificates?hostname="
measure "serial lookup, pasted (API)" -s "$WORK/paths.lua" "$BASE" -- "$WORK/serials" "/api/v1/certificates?serial="
measure "search page, serial" -s "$WORK/paths.lua" "$BASE" -- "$WORK/serials" "/search?q="
measure "dashboard /" "$BASE/"
measure "endpoints ?finding=weak_key" "$BASE/api/v1/endpoints?finding=weak_key"
measure "endpoints ?mtls=required&app=app42" "$BASE/api/v1/endpoints?mtls=required&app=app42"
measure "sockets ?finding=weak_key" "$BASE/api/v1/sockets?finding=weak_key"
measure "sockets ?app=app42" "$BASE/api/v1/sockets?app=app42"
measure "endpoints page ?finding=weak_key" "$BASE/endpoints?finding=weak_key"
measure "certificates ?expiring_within=7d" "$BASE/api/v1/certificates?expiring_within=7d"
measure "certificates ?issuer=..." "$BASE/api/v1/certificates?issuer=CN%3DExample%20Issuing%20CA%207%2CO%3DExample"
