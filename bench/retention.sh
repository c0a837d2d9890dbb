#!/usr/bin/env bash
# Retention's pruning rate (issue 19): seeds a fresh PostgreSQL database with CERTS
# certificates no endpoint has served for 100 days (each with one observation on one of
# ENDPOINTS active endpoints, its chain of two links and two names) beside what those
# endpoints serve now (a leaf each and one shared intermediate), runs
# `certfleet serve --roles scheduler` with [retention] certificate_days = 90, and times the
# scheduler pruning them through the store's real batches. Prints certificates/s and rows/s
# (every row deleted: certificates, observations, chain links, names) and checks that
# exactly the old ones went. NOT a test; CI never runs it.
#
#   bench/retention.sh                     # CERTFLEET_TEST_POSTGRES_URL's server
# Knobs: CERTS=1000000 ENDPOINTS=100000 BATCH=1000 (retention.batch)
# CERTFLEET_BIN=/path/to/certfleet (else a release build of this tree).
set -euo pipefail
cd "$(dirname "$0")/.."

CERTS=${CERTS:-1000000}
ENDPOINTS=${ENDPOINTS:-100000}
BATCH=${BATCH:-1000}
PG_ADMIN_URL="${CERTFLEET_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if [ -z "${CERTFLEET_BIN:-}" ]; then cargo build --release -p certfleet >/dev/null; fi
BIN="${CERTFLEET_BIN:-target/release/certfleet}"
for name in $(compgen -e | grep '^CERTFLEET_' || true); do unset "$name"; done

WORK="$(mktemp -d)"
PID=""
DB_NAME="certfleet_bench_retention_$$"
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  wait 2>/dev/null || true
  psql "$PG_ADMIN_URL" -Xq -c "DROP DATABASE IF EXISTS $DB_NAME" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

psql "$PG_ADMIN_URL" -Xq -c "CREATE DATABASE $DB_NAME"
DB_URL="${PG_ADMIN_URL%/*}/$DB_NAME"
sql() { psql "$DB_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
rows() {
  sql "SELECT (SELECT count(*) FROM certificates) + (SELECT count(*) FROM observations)
            + (SELECT count(*) FROM observation_chain) + (SELECT count(*) FROM certificate_names)"
}

cat > "$WORK/certfleet.toml" <<TOML
[database]
url = "$DB_URL"
[notify]
outbox_dir = "$WORK/outbox"
[retention]
certificate_days = 90
batch = $BATCH
batches_per_run = 1000000
TOML
"$BIN" migrate --config "$WORK/certfleet.toml" >/dev/null

# Certificate 0 is the intermediate, 1..CERTS the old leaves, the rest the leaves served now.
OLD="now() - interval '100 days'"
sql "INSERT INTO certificates (sha256, serial, subject, issuer, not_before, not_after, sans,
         key_type, key_bits, signature_algorithm, is_ca, self_signed, first_seen, last_seen)
     SELECT lpad(to_hex(i), 64, '0'), to_hex(i), 'CN=c' || i, 'CN=Bench CA',
         now() - interval '400 days', now() + interval '300 days',
         jsonb_build_array('c' || i || '.bench.internal'), 'ecdsa', 256, 'ecdsa-with-SHA256',
         i = 0, false, CASE WHEN i BETWEEN 1 AND $CERTS THEN $OLD ELSE now() END,
         CASE WHEN i BETWEEN 1 AND $CERTS THEN $OLD ELSE now() END
     FROM generate_series(0, $CERTS + $ENDPOINTS) AS i"
sql "INSERT INTO certificate_names (name, sha256)
     SELECT n || i || '.bench.internal', lpad(to_hex(i), 64, '0')
     FROM generate_series(1, $CERTS + $ENDPOINTS) AS i, (VALUES ('c'), ('www.c')) AS v(n)"
sql "INSERT INTO endpoints (address, port, first_seen, last_seen, next_probe_at, last_status)
     SELECT '10.' || (e >> 16) || '.' || ((e >> 8) & 255) || '.' || (e & 255), 443,
         $OLD, now(), now() + interval '1 day', 'ok'
     FROM generate_series(1, $ENDPOINTS) AS e"
sql "INSERT INTO observations (endpoint_id, fingerprint, status, leaf_sha256, legacy,
         mtls_requested, ca_names, findings, first_seen, last_seen)
     SELECT 1 + i % $ENDPOINTS, 'old' || i, 'ok', lpad(to_hex(i), 64, '0'), false, false,
         '[]'::jsonb, '[]'::jsonb, $OLD, $OLD
     FROM generate_series(1, $CERTS) AS i
     UNION ALL
     SELECT e, 'now', 'ok', lpad(to_hex($CERTS + e), 64, '0'), false, false, '[]'::jsonb, '[]'::jsonb,
         $OLD, now()
     FROM generate_series(1, $ENDPOINTS) AS e"
sql "INSERT INTO observation_chain (observation_id, position, sha256)
     SELECT id, 0, leaf_sha256 FROM observations
     UNION ALL SELECT id, 1, lpad('0', 64, '0') FROM observations"
sql "UPDATE endpoints e SET observation_id = o.id, leaf_sha256 = o.leaf_sha256,
         leaf_not_after = now() + interval '300 days'
     FROM observations o WHERE o.endpoint_id = e.id AND o.fingerprint = 'now'"
sql "VACUUM ANALYZE"
before=$(rows)
echo "seeded $CERTS old certificates beside $ENDPOINTS endpoints serving $((ENDPOINTS + 1)); $before rows; pruning (retention.batch = $BATCH)"

pruned() { sql "SELECT COALESCE((SELECT pruned FROM retention_totals WHERE kind = 'certificates'), 0)"; }
start=$(date +%s%N)
"$BIN" serve --config "$WORK/certfleet.toml" --roles scheduler 2>"$WORK/serve.log" &
PID=$!
while [ "$(pruned)" -lt "$CERTS" ]; do
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
  sleep 0.2
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
after=$(rows)
deleted=$((before - after))
printf "pruned %d certificates (%d rows) in %.1f s (process start included): %.0f certificates/s, %.0f rows/s\n" \
  "$CERTS" "$deleted" "$(echo "$ms / 1000" | bc -l)" \
  "$(echo "$CERTS * 1000 / $ms" | bc -l)" "$(echo "$deleted * 1000 / $ms" | bc -l)"
left=$(sql "SELECT count(*) FROM certificates")
served=$(sql "SELECT count(*) FROM endpoints e JOIN certificates c ON c.sha256 = e.leaf_sha256")
[ "$left" = $((ENDPOINTS + 1)) ] || { echo "expected $((ENDPOINTS + 1)) certificates left, found $left" >&2; exit 1; }
[ "$served" = "$ENDPOINTS" ] || { echo "every endpoint should still have its leaf: $served" >&2; exit 1; }
echo "left: $left certificates, every endpoint's current leaf and the intermediate"
