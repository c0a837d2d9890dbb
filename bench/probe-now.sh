#!/usr/bin/env bash
# Probe now (issue 16): how long from `POST /api/v1/endpoints/{id}/probe` (answered 202)
# until the endpoint shows the certificate the server serves now, with `serve`'s default
# prober settings (idle poll 1 s) over SQLite. A loopback `openssl s_server` alternates
# between two self-signed certificates; each round swaps it, asks for a probe and polls the
# API every 20 ms until the new leaf is recorded. The rate-limit window is set to 1 s
# (CERTFLEET_SERVER__PROBE_NOW_WINDOW) so rounds can follow each other.
#
#   ROUNDS=10 bench/probe-now.sh          # CERTFLEET_BIN=/path/to/certfleet for another build
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-10}"
if [ -z "${CERTFLEET_BIN:-}" ]; then cargo build --release -p certfleet >/dev/null; fi
BIN="${CERTFLEET_BIN:-target/release/certfleet}"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

for name in a b; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=$name.probe-now.test" -keyout "$WORK/$name.key" -out "$WORK/$name.pem" 2>/dev/null
  openssl x509 -in "$WORK/$name.pem" -outform DER | sha256sum | cut -d' ' -f1 > "$WORK/$name.sha"
done
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

serve_tls() {  # serve_tls a|b: (re)start the TLS server on $PORT with that certificate
  if [ -n "${TLS_PID:-}" ]; then kill "$TLS_PID"; wait "$TLS_PID" 2>/dev/null || true; fi
  until openssl s_server -quiet -accept "127.0.0.1:$PORT" -cert "$WORK/$1.pem" -key "$WORK/$1.key" \
          -www </dev/null >/dev/null 2>&1 & TLS_PID=$!; sleep 0.2; kill -0 "$TLS_PID" 2>/dev/null; do
    sleep 0.1
  done
  PIDS+=("$TLS_PID")
}

cat > "$WORK/certfleet.toml" <<TOML
[database]
url = "sqlite://$WORK/certfleet.db"
[server]
listen = "127.0.0.1:0"
[probe]
allow = ["127.0.0.0/8"]
[notify]
outbox_dir = "$WORK/outbox"
TOML
export CERTFLEET_SERVER__PROBE_NOW_WINDOW=1s
"$BIN" migrate --config "$WORK/certfleet.toml" >/dev/null
AGENT=$("$BIN" token create --config "$WORK/certfleet.toml" --agent bench 2>/dev/null | tail -1)
OPERATOR=$("$BIN" token create --config "$WORK/certfleet.toml" --operator bench 2>/dev/null | tail -1)
serve_tls a
"$BIN" serve --config "$WORK/certfleet.toml" --roles api,prober > "$WORK/serve.out" 2> "$WORK/serve.log" &
PIDS+=($!)
until URL=$(grep -o 'http://[0-9.:]*' "$WORK/serve.out" 2>/dev/null); do sleep 0.05; done

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
curl -sf -H "Authorization: Bearer $AGENT" -H 'Content-Type: application/json' "$URL/api/v1/reports" -d "{
  \"agent\":{\"version\":\"0.1.0\"},\"collected_at\":\"$(now)\",
  \"host\":{\"hostname\":\"bench\",\"machine_id\":\"machine-bench\",\"addresses\":[\"127.0.0.1\"],\"tags\":{}},
  \"sockets\":[{\"address\":\"127.0.0.1\",\"port\":$PORT,\"protocol\":\"tcp\",\"netns\":4026531840,
    \"process\":\"s_server\",\"container\":null,\"reachable\":[\"127.0.0.1\"],\"scope\":\"host\"}]}" >/dev/null

leaf() {  # the unnamed endpoint's id and current leaf
  curl -sf "$URL/api/v1/endpoints?address=127.0.0.1&port=$PORT" \
    | jq -r '.items[] | select(.sni == null) | "\(.id) \(.observation.leaf_sha256 // "-")"'
}
wait_for() {  # wait_for SHA: until the unnamed endpoint records it (at most 60 s)
  local deadline=$(( $(date +%s) + 60 ))
  until [ "$(leaf | cut -d' ' -f2)" = "$1" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out; log:" >&2; tail -20 "$WORK/serve.log" >&2; exit 1; }
    sleep 0.02
  done
}
wait_for "$(cat "$WORK/a.sha")"
ID=$(leaf | cut -d' ' -f1)

echo "probe now: request (202) until the served certificate is recorded, endpoint $ID, $ROUNDS rounds"
times=()
current=a
for round in $(seq 1 "$ROUNDS"); do
  next=$([ "$current" = a ] && echo b || echo a)
  serve_tls "$next"
  sleep 1.1  # the 1 s window since the last request
  start=$(date +%s%N)
  status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $OPERATOR" \
    "$URL/api/v1/endpoints/$ID/probe")
  [ "$status" = 202 ] || { echo "round $round: answered $status" >&2; exit 1; }
  wait_for "$(cat "$WORK/$next.sha")"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  times+=("$ms")
  printf "round %2d: %5d ms\n" "$round" "$ms"
  current=$next
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "min %d ms, median %d ms, max %d ms\n", a[1], a[int((NR+1)/2)], a[NR]}'
