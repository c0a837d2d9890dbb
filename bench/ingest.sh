#!/usr/bin/env bash
# certfleet service benchmark (issue 3). NOT a test; CI never runs it.
#
# 1. Ingest: `certfleet serve --roles api` on a fresh PostgreSQL database; REPORTS agent
#    reports of SOCKETS sockets each (one host per report, every socket its own
#    endpoint) are POSTed by INGEST_CLIENTS concurrent clients, twice (new endpoints, then
#    the same reports again), ROUNDS times with new hosts each round. Prints sockets/s
#    (median and best: other work on these 2 cores slows some rounds) and the CPU that
#    certfleet and PostgreSQL spent per socket. Goal: >= 50,000 sockets/s.
# 2. Probe pipeline: nginx serves PORTS TLS ports on 127.0.0.1..127.0.0.ADDRS (8 leaves:
#    4 ECDSA P-256, 4 RSA-2048, under root -> intermediate); the endpoints are reported
#    through the API, then, REPEAT times and alternately, `certfleet probe -f targets`
#    alone and `certfleet serve --roles prober` (timed until every endpoint is recorded in
#    the database) run against them. Every leaf is checked. Prints endpoints/s for both and
#    the ratio. Goal: pipeline >= 70% of probe alone. With PROBERS="1 2" (the default), the
#    same endpoints are also probed by two `serve --roles prober` processes sharing the
#    database (issue 5), and the probes each run recorded are counted (none twice).
#
# Usage: bench/ingest.sh   (as root: installs nginx if missing; needs PostgreSQL's binaries)
# Knobs (environment):
#   PRIVATE_PG=1: run a private PostgreSQL (initdb in the temporary folder, stock settings,
#     as the postgres user), so that no other test's queries share it and its CPU can be
#     counted; PRIVATE_PG=0 uses PG_URL (default $CERTFLEET_TEST_POSTGRES_URL or
#     postgres://postgres@127.0.0.1:5432/postgres), where the benchmark creates and drops
#     its own databases. PG_OPTIONS: extra server options for the private PostgreSQL,
#     e.g. "-c shared_buffers=1GB -c wal_buffers=64MB -c max_wal_size=4GB".
#   BENCH_NICE=-15: after the build, everything the benchmark starts (PostgreSQL, nginx,
#     certfleet, the clients) runs at this nice level in a session (autogroup) of its own,
#     so that other work on these 2 cores takes little CPU from it; 0 to turn off. The
#     driver lowers the nice of each PostgreSQL backend's own autogroup too.
#   REPORTS=40 SOCKETS=10000 INGEST_CLIENTS=4 ROUNDS=3 GZIP=0,
#   PORTS=1000 ADDRS=5 BASE_PORT=21000 NGINX_WORKERS=2 REPEAT=3 CONCURRENCY=256
#   PROBERS="1 2" (prober processes in each pipeline comparison; 1 is always run)
#   MAX_PER_ADDRESS=256 (probe.max_per_address: the endpoints sit on ADDRS addresses only)
#   DATABASE=postgres (sqlite: the ingest part on a SQLite file in the temporary folder,
#     no PostgreSQL; the pipeline is skipped), SQLITE_SYNCHRONOUS= (full or normal:
#     database.sqlite_synchronous; empty: the default)
#   EVENTS=0 (1: change events written too, see below)
#   TIMEOUT=5s BENCH_TIMELINE=0 (1: probes started per 200 ms in each pipeline run) SKIP_INGEST=0 SKIP_PIPELINE=0 SKIP_BUILD=0 KEEP_TMP=0
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY="python3 $HERE/ingest_bench.py"

export PG_URL=${PG_URL:-${CERTFLEET_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
PRIVATE_PG=${PRIVATE_PG:-1}
PG_OPTIONS=${PG_OPTIONS:-}
export BENCH_NICE=${BENCH_NICE:--15}
REPORTS=${REPORTS:-40}
SOCKETS=${SOCKETS:-10000}
INGEST_CLIENTS=${INGEST_CLIENTS:-4}
ROUNDS=${ROUNDS:-3}
GZIP=${GZIP:-0}
PORTS=${PORTS:-1000}
ADDRS=${ADDRS:-5}
BASE_PORT=${BASE_PORT:-21000}
NGINX_WORKERS=${NGINX_WORKERS:-2}
REPEAT=${REPEAT:-3}
CONCURRENCY=${CONCURRENCY:-256}
PROBERS=${PROBERS:-"1 2"}
MAX_PER_ADDRESS=${MAX_PER_ADDRESS:-256}
TIMEOUT=${TIMEOUT:-5s}
SKIP_INGEST=${SKIP_INGEST:-0}
SKIP_PIPELINE=${SKIP_PIPELINE:-0}
DATABASE=${DATABASE:-postgres}
SQLITE_SYNCHRONOUS=${SQLITE_SYNCHRONOUS:-}
if [[ $DATABASE == sqlite ]]; then
  PRIVATE_PG=0 SKIP_PIPELINE=1
  export BENCH_NO_PG=1
fi
SKIP_BUILD=${SKIP_BUILD:-0}
# EVENTS=1: [events] configured, so every change also writes its change event (issue 16;
# only the roles the benchmark starts run, so nothing publishes them). Not for a binary
# older than the events outbox, which refuses the section.
EVENTS=${EVENTS:-0}
KEEP_TMP=${KEEP_TMP:-0}
# CERTFLEET_BIN=/path/to/certfleet: measure that binary (e.g. an older commit's release
# build, for a before/after comparison in one sitting) instead of building this tree.
BIN=${CERTFLEET_BIN:-}
# certfleet reads every CERTFLEET_* variable as configuration: pass none of ours on.
for name in $(compgen -e | grep '^CERTFLEET_' || true); do unset "$name"; done

say() { printf '\n== %s\n' "$*"; }
for tool in $([[ $DATABASE == sqlite ]] || echo psql) openssl python3; do command -v $tool >/dev/null || { echo "missing $tool" >&2; exit 1; }; done
if [[ $SKIP_PIPELINE != 1 ]] && ! command -v nginx >/dev/null; then
  echo "installing nginx"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && { apt-get install -y -qq nginx-light >/dev/null || apt-get install -y -qq nginx >/dev/null; }
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

BIN=${BIN:-${BENCH_BIN_KEPT:-}}
if [[ -z $BIN && $SKIP_BUILD != 1 ]]; then
  say "cargo build --release -p certfleet"
  (cd "$ROOT" && cargo build --release -p certfleet 2>&1 | tail -2)
fi
BIN=${BIN:-$ROOT/target/release/certfleet}
[[ -x $BIN ]] || { echo "no $BIN" >&2; exit 1; }
export BENCH_BIN_KEPT=$BIN

if [[ $BENCH_NICE != 0 ]]; then
  # With autogroup scheduling nice only ranks processes inside one session's autogroup:
  # run in a session of our own, and lower the nice of its autogroup too.
  if [[ -z ${BENCH_IN_SESSION:-} && -r /proc/$$/autogroup ]] && command -v setsid >/dev/null; then
    BENCH_IN_SESSION=1 SKIP_BUILD=1 exec setsid -w bash "$HERE/ingest.sh"
  fi
  renice -n "$BENCH_NICE" -p $$ >/dev/null
  if [[ -w /proc/$$/autogroup ]]; then echo "$BENCH_NICE" >"/proc/$$/autogroup" || true; fi
fi

T=$(mktemp -d /tmp/certfleet-ingest-bench.XXXXXX)
chmod 755 "$T"
# a private copy: a rebuild in the work tree during the run changes nothing
CF=$T/certfleet
cp "$BIN" "$CF"
PIDS=()
DATABASES=()
PGBIN=
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [[ -n $PGBIN ]]; then
    as_postgres "$PGBIN/pg_ctl" -D "$T/pg/data" stop -m fast >/dev/null 2>&1 || true
  else
    for db in "${DATABASES[@]}"; do psql "$PG_URL" -X -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; done
  fi
  if [[ $KEEP_TMP == 1 ]]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
as_postgres() { if [[ $(id -u) == 0 ]]; then (cd "$T/pg" && runuser -u postgres -- "$@"); else (cd "$T/pg" && "$@"); fi; }

if [[ $PRIVATE_PG == 1 ]]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -x $PGBIN/initdb ]] || { echo "no /usr/lib/postgresql/*/bin/initdb; set PRIVATE_PG=0" >&2; exit 1; }
  mkdir -p "$T/pg"
  [[ $(id -u) == 0 ]] && chown postgres: "$T/pg"
  as_postgres "$PGBIN/initdb" -D "$T/pg/data" -U postgres -A trust -E UTF8 >"$T/initdb.log" 2>&1
  PGPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_postgres "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/postgres.log" -w -t 60 \
    -o "-p $PGPORT -k $T/pg -c listen_addresses=127.0.0.1 $PG_OPTIONS" start >/dev/null
  PG_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
  # for the driver's CPU accounting: the postmaster and its children
  export BENCH_PG_PID=$(head -1 "$T/pg/data/postmaster.pid")
fi
if [[ $DATABASE == sqlite ]]; then
  echo "cores: $(nproc); load average: $(cut -d' ' -f1-3 /proc/loadavg); nice $(ps -o ni= -p $$ | tr -d ' '); SQLite in $T ($(df --output=source,fstype "$T" | tail -1 | tr -s ' ')), synchronous ${SQLITE_SYNCHRONOUS:-default}"
else
psql "$PG_URL" -X -q -c 'SELECT 1' >/dev/null || { echo "PostgreSQL at $PG_URL does not answer" >&2; exit 1; }
echo "cores: $(nproc); load average: $(cut -d' ' -f1-3 /proc/loadavg); nice $(ps -o ni= -p $$ | tr -d ' '); PostgreSQL $(psql "$PG_URL" -X -At -c 'SHOW server_version') ($([[ -n $PGBIN ]] && echo "private, ${PG_OPTIONS:-stock settings}" || echo "$PG_URL")); $(openssl version)"

fi

# new_database NAME: creates it, sets DB_URL
new_database() {
  if [[ $DATABASE == sqlite ]]; then DB_URL="sqlite://$T/$1.db"; return; fi
  psql "$PG_URL" -X -q -c "CREATE DATABASE $1"
  DATABASES+=("$1")
  DB_URL="${PG_URL%/*}/$1"
}

# write_config FILE DB_URL
write_config() {
  cat >"$1" <<EOF
[database]
url = "$2"
max_connections = 10
$([[ -n $SQLITE_SYNCHRONOUS ]] && echo "sqlite_synchronous = \"$SQLITE_SYNCHRONOUS\"")
[server]
listen = "127.0.0.1:0"
[probe]
allow = ["127.0.0.0/8"]
timeout = "$TIMEOUT"
concurrency = $CONCURRENCY
max_per_address = $MAX_PER_ADDRESS
[notify]
outbox_dir = "$T/outbox"
$([[ $EVENTS == 1 ]] && printf '[events]\nnats_url = "nats://127.0.0.1:4222"\n')
EOF
}

# start_api CONFIG NAME: `serve --roles api` in the background; sets API_URL, API_PID, TOKEN
start_api() {
  "$CF" serve --config "$1" --roles api >"$T/$2.out" 2>"$T/$2.log" &
  API_PID=$!
  PIDS+=("$API_PID")
  API_URL="http://$($PY wait-line "$T/$2.out" 'certfleet: listening on http://' 60)"
  TOKEN=$("$CF" token create --config "$1" --agent bench 2>/dev/null | tail -1)
}

# ---------------------------------------------------------------- 1. ingest
if [[ $SKIP_INGEST != 1 ]]; then
  say "ingest: $ROUNDS x $REPORTS reports x $SOCKETS sockets into $DATABASE, $INGEST_CLIENTS clients"
  new_database "certfleet_bench_ingest_$$"
  write_config "$T/ingest.toml" "$DB_URL"
  "$CF" migrate --config "$T/ingest.toml" >/dev/null
  start_api "$T/ingest.toml" ingest
  echo "serve --roles api at $API_URL (pid $API_PID)"
  $PY ingest "$API_URL" "$TOKEN" "$REPORTS" "$SOCKETS" "$INGEST_CLIENTS" "$GZIP" "$API_PID" "$ROUNDS" | tee "$T/ingest.txt"
  [[ $DATABASE == sqlite ]] || psql "$DB_URL" -X -At -c "SELECT 'store: ' || (SELECT count(*) FROM hosts) || ' hosts, ' || (SELECT count(*) FROM endpoints) || ' endpoints'"
  kill "$API_PID"; wait "$API_PID" 2>/dev/null || true
fi

# ---------------------------------------------------------------- 2. probe pipeline
if [[ $SKIP_PIPELINE != 1 ]]; then
  say "probe pipeline: $((PORTS * ADDRS)) loopback TLS endpoints (nginx, $NGINX_WORKERS workers)"
  mkdir -p "$T/pki" "$T/nginx-tmp"
  (
    cd "$T/pki"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out root.key 2>/dev/null
    openssl req -x509 -new -key root.key -sha256 -days 3650 -subj "/CN=certfleet ingest bench root CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out root.pem
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out int.key 2>/dev/null
    openssl req -new -key int.key -subj "/CN=certfleet ingest bench issuing CA" -out int.csr
    printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' >int.ext
    openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -sha256 -days 1825 \
      -extfile int.ext -out int.pem 2>/dev/null
    sep=""
    echo "[" >leaves.json
    for i in 0 1 2 3 4 5 6 7; do
      if ((i % 2 == 0)); then
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "leaf$i.key" 2>/dev/null
      else
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "leaf$i.key" 2>/dev/null
      fi
      openssl req -new -key "leaf$i.key" -subj "/CN=leaf-$i.bench.certfleet.test" -out "leaf$i.csr"
      printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:leaf-%s.bench.certfleet.test\n' "$i" >"leaf$i.ext"
      openssl x509 -req -in "leaf$i.csr" -CA int.pem -CAkey int.key -CAserial root.srl -sha256 -days 365 \
        -extfile "leaf$i.ext" -out "leaf$i.pem" 2>/dev/null
      cat "leaf$i.pem" int.pem >"leaf$i.chain.pem"
      sha=$(openssl x509 -in "leaf$i.pem" -outform der | sha256sum | cut -d' ' -f1)
      printf '%s{"sha256":"%s","chain":"%s","key":"%s"}\n' "$sep" "$sha" "$T/pki/leaf$i.chain.pem" "$T/pki/leaf$i.key" >>leaves.json
      sep=","
    done
    echo "]" >>leaves.json
    mv leaves.json "$T/leaves.json"
  )
  $PY nginx-conf "$T" "$PORTS" "$BASE_PORT" "$ADDRS" "$NGINX_WORKERS"
  nginx -p "$T" -c "$T/nginx.conf" -e "$T/nginx-error.log" &
  PIDS+=("$!")
  $PY wait-ready "$PORTS" "$BASE_PORT" "$ADDRS" 60

  new_database "certfleet_bench_probe_$$"
  write_config "$T/probe.toml" "$DB_URL"
  "$CF" migrate --config "$T/probe.toml" >/dev/null
  start_api "$T/probe.toml" probe-api
  $PY post-targets "$API_URL" "$TOKEN" "$PORTS" "$BASE_PORT" "$ADDRS"
  kill "$API_PID"; wait "$API_PID" 2>/dev/null || true

  say "alternately: certfleet probe -f targets.txt --concurrency $CONCURRENCY, and serve --roles prober (probe.concurrency = $CONCURRENCY) [$REPEAT runs each]"
  $PY compare "$CF" "$T/probe.toml" "$DB_URL" "$T" "$REPEAT" "$CONCURRENCY" "$TIMEOUT" "$PROBERS" | tee "$T/compare.txt"
fi

say "summary ($(nproc) cores; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
[[ -f $T/ingest.txt ]] && grep '^INGEST' "$T/ingest.txt" || true
[[ -f $T/compare.txt ]] && grep -E '^(PROBE|PIPELINE)' "$T/compare.txt" || true
