#!/usr/bin/env bash
# Lease time per batch with and without zone filtering (issue 17), on PostgreSQL: the
# probers' lease statement (store/src/write/leases.rs, verbatim) over a seeded endpoints
# table, run back to back by pgbench, each lease committed (the queue drains as it would).
#
#   bench/zones-lease.sh                      # 1,000,000 endpoints, 4 zones, 20 % due
#   ENDPOINTS=3000000 LEASES=200 BATCH=500 bench/zones-lease.sh
#
# Prints the average and standard deviation per lease of BATCH for: every zone (no
# filter: the plain due index), one zone, two zones, and a zone with nothing due.
# Seeded with psql from migrations/postgres (no build needed); the database is dropped at
# the end (KEEP=1 keeps it, for EXPLAIN). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_ADMIN_URL="${CERTFLEET_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=certfleet_bench_zones
DB_URL="${PG_ADMIN_URL%/*}/$DB"
ENDPOINTS="${ENDPOINTS:-1000000}"
LEASES="${LEASES:-100}"
BATCH="${BATCH:-500}"
command -v pgbench >/dev/null || { echo "needs pgbench (postgresql-contrib / postgresql client)" >&2; exit 1; }

WORK="$(mktemp -d)"
cleanup() { rm -rf "$WORK"; [ -n "${KEEP:-}" ] && return; psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT

psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
for migration in migrations/postgres/*.sql; do
  psql "$DB_URL" -q -v ON_ERROR_STOP=1 -f "$migration" >/dev/null
done
start=$(date +%s)
# Zones z0..z3 (a quarter each); one endpoint in five due, spread over the last hour; the
# rest due within a day. Deterministic by id, so every case starts from the same queue.
psql "$DB_URL" -q -v ON_ERROR_STOP=1 <<SQL
SET synchronous_commit = off;
INSERT INTO endpoints (address, port, sni, first_seen, last_seen, next_probe_at, zone)
SELECT '10.' || (i >> 16) || '.' || ((i >> 8) & 255) || '.' || (i & 255), 443, '',
       now(), now(), now(), 'z' || (i % 4)
FROM generate_series(1, $ENDPOINTS) AS i;
SQL
reset_queue() {
  psql "$DB_URL" -q -v ON_ERROR_STOP=1 <<'SQL'
UPDATE endpoints SET lease_owner = NULL, lease_until = NULL,
    next_probe_at = CASE WHEN id % 5 = 0 THEN now() - (id % 3600) * interval '1 second'
                         ELSE now() + (1 + id % 86400) * interval '1 second' END;
VACUUM ANALYZE endpoints;
SQL
}
reset_queue
echo "seeded $ENDPOINTS endpoints in 4 zones in $(( $(date +%s) - start )) s; $(psql "$DB_URL" -Atc "SELECT pg_size_pretty(pg_total_relation_size('endpoints'))") with indexes"

# The lease statements as the store writes them (store/src/write/leases.rs), binds inlined:
# every zone (no filter), or the zones given ($5), one index range per zone.
lease_sql() {
  local zones="$1" set="lease_owner = 'bench', lease_until = now() + interval '5 minutes', next_probe_at = now() + interval '5 minutes'"
  local returning="RETURNING e.id, e.address, e.port, e.sni, e.sni_source, e.starttls, e.failures, e.lease_until;"
  local due="retired_at IS NULL AND next_probe_at <= now()"
  if [ -z "$zones" ]; then
    echo "WITH due AS (SELECT id FROM endpoints WHERE $due ORDER BY next_probe_at LIMIT $BATCH FOR UPDATE SKIP LOCKED) UPDATE endpoints e SET $set FROM due WHERE e.id = due.id $returning"
  else
    echo "WITH due AS (SELECT d.id FROM unnest('$zones'::text[]) AS z(name), LATERAL (SELECT id, next_probe_at FROM endpoints WHERE zone = z.name AND $due ORDER BY next_probe_at LIMIT $BATCH FOR UPDATE SKIP LOCKED) d ORDER BY d.next_probe_at LIMIT $BATCH) UPDATE endpoints e SET $set FROM due WHERE e.id = due.id $returning"
  fi
}

printf '%-28s %12s %12s %10s\n' "lease of $BATCH" "avg ms" "stddev ms" "rows"
run_case() {
  local name="$1" filter="$2"
  reset_queue
  lease_sql "$filter" > "$WORK/lease.sql"
  local out
  out=$(pgbench -n -r -c 1 -t "$LEASES" -f "$WORK/lease.sql" "$DB_URL" 2>&1)
  local avg stddev
  avg=$(grep -o 'latency average = [0-9.]*' <<<"$out" | grep -o '[0-9.]*$')
  stddev=$(grep -o 'latency stddev = [0-9.]*' <<<"$out" | grep -o '[0-9.]*$' || echo "-")
  local leased
  leased=$(psql "$DB_URL" -Atc "SELECT count(*) FROM endpoints WHERE lease_owner = 'bench'")
  printf '%-28s %12s %12s %10s\n' "$name" "$avg" "$stddev" "$leased"
}
run_case "every zone (no filter)" ""
run_case "one zone" "{z1}"
run_case "two zones" "{z1,z2}"
run_case "a zone with nothing due" "{nowhere}"
