#!/usr/bin/env bash
# The events role's publish rate (issue 16): seeds EVENTS unpublished change events into the
# outbox of a fresh database, starts a private nats-server with JetStream (file storage in
# a temporary folder), runs `certfleet serve --roles events` and times it draining the
# outbox into the stream. Prints events/s (goal: at least 5,000/s) and checks the stream
# holds every event once. NOT a test; CI never runs it.
#
#   bench/events.sh                        # PostgreSQL (CERTFLEET_TEST_POSTGRES_URL's server)
#   DATABASE=sqlite bench/events.sh        # a SQLite file
# Knobs: EVENTS=200000 BATCH=1000 (events.batch) CERTFLEET_BIN=/path/to/certfleet (else a
# release build of this tree).
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-200000}
BATCH=${BATCH:-1000}
DATABASE=${DATABASE:-postgres}
PG_ADMIN_URL="${CERTFLEET_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if [ -z "${CERTFLEET_BIN:-}" ]; then cargo build --release -p certfleet >/dev/null; fi
BIN="${CERTFLEET_BIN:-target/release/certfleet}"
for name in $(compgen -e | grep '^CERTFLEET_' || true); do unset "$name"; done
[ -x /usr/sbin/nats-server ] || { echo "needs nats-server (Debian package nats-server)" >&2; exit 1; }

WORK="$(mktemp -d)"
PIDS=()
DB_NAME="certfleet_bench_events_$$"
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$DATABASE" = postgres ] && psql "$PG_ADMIN_URL" -Xq -c "DROP DATABASE IF EXISTS $DB_NAME" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ "$DATABASE" = postgres ]; then
  psql "$PG_ADMIN_URL" -Xq -c "CREATE DATABASE $DB_NAME"
  DB_URL="${PG_ADMIN_URL%/*}/$DB_NAME"
  pending() { psql "$DB_URL" -XAtc "SELECT count(*) FROM events WHERE published_at IS NULL"; }
  SEED="INSERT INTO events (event_id, kind, at, data)
        SELECT md5(i::text), 'endpoint.discovered', now(),
          jsonb_build_object('endpoint', jsonb_build_object('id', i, 'address', '10.0.0.1',
            'port', 1 + i % 65535, 'sni', null, 'app', 'bench', 'env', 'prod', 'owner', null))
        FROM generate_series(1, $EVENTS) AS i"
  seed() { psql "$DB_URL" -Xq -c "$SEED"; }
else
  DB_URL="sqlite://$WORK/certfleet.db"
  pending() { sqlite3 "$WORK/certfleet.db" "SELECT count(*) FROM events WHERE published_at IS NULL"; }
  SEED="WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $EVENTS)
        INSERT INTO events (event_id, kind, at, data)
        SELECT lower(hex(randomblob(16))), 'endpoint.discovered', unixepoch(),
          json_object('endpoint', json_object('id', i, 'address', '10.0.0.1',
            'port', 1 + i % 65535, 'sni', null, 'app', 'bench', 'env', 'prod', 'owner', null))
        FROM n"
  seed() { sqlite3 "$WORK/certfleet.db" "$SEED"; }
fi

NATS_PORT=$(free_port)
MONITOR_PORT=$(free_port)
/usr/sbin/nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -m "$MONITOR_PORT" -sd "$WORK/nats" \
  -l "$WORK/nats.log" &
PIDS+=($!)
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/"$NATS_PORT") 2>/dev/null && break; sleep 0.1; done

cat > "$WORK/certfleet.toml" <<TOML
[database]
url = "$DB_URL"
[events]
nats_url = "nats://127.0.0.1:$NATS_PORT"
stream = "CERTFLEET_BENCH"
batch = $BATCH
TOML
"$BIN" migrate --config "$WORK/certfleet.toml" >/dev/null
seed
echo "seeded $(pending) unpublished events into $DATABASE; publishing (events.batch = $BATCH)"

start=$(date +%s%N)
"$BIN" serve --config "$WORK/certfleet.toml" --roles events 2>"$WORK/serve.log" &
PIDS+=($!)
while [ "$(pending)" != 0 ]; do
  kill -0 "${PIDS[1]}" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
  sleep 0.1
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
stored=$(python3 - "$MONITOR_PORT" <<'PY'
import json, sys, urllib.request
jsz = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/jsz?streams=true"))
print(sum(s["state"]["messages"] for a in jsz.get("account_details", [])
          for s in a.get("stream_detail", [])))
PY
)
printf "published %d events in %.1f s (process start and connect included): %.0f events/s; stream holds %d\n" \
  "$EVENTS" "$(echo "$ms / 1000" | bc -l)" "$(echo "$EVENTS * 1000 / $ms" | bc -l)" "$stored"
[ "$stored" = "$EVENTS" ] || { echo "the stream should hold $EVENTS events" >&2; exit 1; }
