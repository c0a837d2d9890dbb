#!/usr/bin/env bash
# One collection pass of the certfleet agent (`certfleet agent --print`, release build):
# CPU time (user + system, mean of RUNS runs) and peak RSS, beside `ss -tlnp` on the same
# host in the same run:
#   1. this host as it is;
#   2. with 200 extra listening sockets (one process, host namespace);
#   3. as root: 10,000 listening sockets across 200 network namespaces (50 per namespace,
#      one process in each), compared with `ss -tlnp` (host namespace only, which is all
#      it sees) and `ip -all netns exec ss -tlnp` (every namespace).
# Not run by CI. Cleans up (processes it started, namespaces it made) on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-10}"
NAMESPACES="${NAMESPACES:-200}"
PER_NAMESPACE="${PER_NAMESPACE:-50}"
cargo build --release -q -p certfleet
BIN="$PWD/target/release/certfleet"
TAG="cfb$$"
WORK="$(mktemp -d)"
SPAWNER_PIDS=()

cleanup() {
  for pid in "${SPAWNER_PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  if [ "$(id -u)" = 0 ]; then
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$TAG-" || true); do
      ip netns del "$ns" 2>/dev/null || true
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

source bench/measure.sh

# spawn COUNT PER [NAMESPACE-PREFIX]: listening sockets on 0.0.0.0, PER per process; with a
# prefix, one forked process inside each namespace PREFIX-0..COUNT-1 (setns via libc).
spawn() {
  local ready="$WORK/ready-$RANDOM"
  setsid python3 - "$1" "$2" "${3:-}" "$ready" <<'EOF' &
import ctypes, os, signal, socket, sys, time
count, per, prefix, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
libc = ctypes.CDLL(None, use_errno=True)
def listeners(n):
    held = []
    for _ in range(n):
        s = socket.socket(); s.bind(("0.0.0.0", 0)); s.listen(16); held.append(s)
    return held
if not prefix:
    held = listeners(count * per)
else:
    done_r, done_w = os.pipe()
    for i in range(count):
        if os.fork() == 0:
            fd = os.open(f"/run/netns/{prefix}-{i}", os.O_RDONLY)
            if libc.setns(fd, 0x40000000) != 0:
                os._exit(1)
            held = listeners(per)
            os.write(done_w, b"x")
            signal.pause()
            os._exit(0)
    got = 0
    while got < count:
        got += len(os.read(done_r, count))
open(ready, "w").close()
signal.pause()
EOF
  SPAWNER_PIDS+=("$!")
  for _ in $(seq 1 600); do [ -e "$ready" ] && return 0; sleep 0.1; done
  echo "the listeners did not come up" >&2
  exit 1
}

sockets_seen() {
  NO_COLOR=1 "$BIN" agent --print -v 2>&1 >/dev/null \
    | grep -o 'sockets=[0-9]* namespaces=[0-9]* processes=[0-9]*' || true
}

agent=("$BIN" agent --print)
echo "host: $(nproc) cores, $(uname -r); runs per figure: $RUNS"
echo "== 1. this host as it is ($(sockets_seen))"
measure "certfleet agent --print" "${agent[@]}"
measure "ss -tlnp" ss -tlnp

spawn 1 200
echo "== 2. with 200 extra listening sockets ($(sockets_seen))"
measure "certfleet agent --print" "${agent[@]}"
measure "ss -tlnp" ss -tlnp
kill -- "-${SPAWNER_PIDS[-1]}" 2>/dev/null || true

if [ "$(id -u)" != 0 ]; then
  echo "== 3. skipped: creating $NAMESPACES network namespaces needs root"
  exit 0
fi
for i in $(seq 0 $((NAMESPACES - 1))); do
  ns="$TAG-$i"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "198.19.$((i / 250)).$((i % 250 + 1))/32" dev lo
done
spawn "$NAMESPACES" "$PER_NAMESPACE" "$TAG"
echo "== 3. $((NAMESPACES * PER_NAMESPACE)) sockets in $NAMESPACES namespaces ($(sockets_seen))"
measure "certfleet agent --print (every namespace)" "${agent[@]}"
measure "ss -tlnp (host namespace only)" ss -tlnp
RUNS=2 measure "ip -all netns exec ss -tlnp (every ns, 2 runs)" ip -all netns exec ss -tlnp
