#!/usr/bin/env bash
# certfleet probe throughput benchmark (issue 2). NOT a test; CI never runs it.
#
# One nginx serves PORTS loopback TLS ports (x ADDRS loopback addresses for the
# memory run), with 16 leaves (8 ECDSA P-256, 8 RSA-2048) under a generated
# root -> intermediate CA; port BASE_PORT+i serves leaf i % 16. The same run probes
# every port with certfleet (several --concurrency values), nmap --script +ssl-cert
# and openssl s_client (64 in parallel), checks every leaf, measures certfleet's
# peak RSS for 100 / 1,000 / 10,000 targets, profiles certfleet, and prints a table.
#
# Usage (as root; installs nginx, nmap, time, perf/valgrind when missing):
#   bench/probe-throughput.sh
# Knobs (environment): PORTS=1000 BASE_PORT=20000 ADDRS=10 NGINX_WORKERS=2
#   CONCURRENCIES="default 64 128 256 512 1024" REPEAT=3 NMAP_REPEAT=3
#   OPENSSL_REPEAT=1 OPENSSL_PARALLEL=64 NMAP_ARGS="-T4" TIMEOUT=5s
#   TOOLS="certfleet nmap openssl" PROFILE=1 SKIP_BUILD=0 KEEP_TMP=0
#   CERTFLEET_BIN= (a certfleet binary to measure instead of building this tree)
#   BENCH_NICE=-15 (after the build, the benchmark - nginx, certfleet, nmap, openssl - runs at
#   this nice level, so that other work on the machine, at nice 0, takes little of the CPU
#   from it; 0 to turn off)
#   QUIET_WAIT=0 (seconds to wait, before measuring, for the 1-minute load average to drop
#   below QUIET_LOAD=1.0; other work on these 2 cores skews every figure, and the
#   "other CPU s" column shows how much of it ran during each measurement)
set -euo pipefail
# The whole script is one compound command, so bash parses all of it before running:
# editing this file during a run cannot change the run.
{

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY="python3 -B $HERE/probe_bench.py"

PORTS=${PORTS:-1000}
BASE_PORT=${BASE_PORT:-20000}
ADDRS=${ADDRS:-10}
# 2 workers = nproc on this 2-core machine: with 1 worker nginx could use at most one
# core and would cap every tool at the server's single-core handshake rate (RSA-2048
# signing is ~2,000/s per core); with 2 the server and the client share both cores,
# the same for every tool.
NGINX_WORKERS=${NGINX_WORKERS:-2}
CONCURRENCIES=${CONCURRENCIES:-"default 64 128 256 512 1024"}
REPEAT=${REPEAT:-3}
NMAP_REPEAT=${NMAP_REPEAT:-3}
OPENSSL_REPEAT=${OPENSSL_REPEAT:-1}
OPENSSL_PARALLEL=${OPENSSL_PARALLEL:-64}
# nmap runs its NSE scripts in one thread and is CPU-bound there (~2.8 s user for 1,000
# ports); -T4 helped a little, --min/--max-parallelism (64/256/1024) did not (measured).
NMAP_ARGS=${NMAP_ARGS:-"-T4"}
TIMEOUT=${TIMEOUT:-5s}
TOOLS=${TOOLS:-"certfleet nmap openssl"}  # "none": only set up and tear down
PROFILE=${PROFILE:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}
BENCH_NICE=${BENCH_NICE:--15}
QUIET_WAIT=${QUIET_WAIT:-0}
QUIET_LOAD=${QUIET_LOAD:-1.0}
N_LEAVES=16
LAST_PORT=$((BASE_PORT + PORTS - 1))

has_tool() { [[ " $TOOLS " == *" $1 "* ]]; }
say() { printf '\n== %s\n' "$*"; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f", a / b; else print "n/a" }'; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

# ---------------------------------------------------------------- 1. requirements
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v nmap >/dev/null || need+=(nmap)
command -v openssl >/dev/null || need+=(openssl)
[[ -x /usr/bin/time ]] || need+=(time)
command -v python3 >/dev/null || need+=(python3)
if [[ $PROFILE == 1 ]]; then
  command -v perf >/dev/null || need+=(linux-perf)
  command -v valgrind >/dev/null || need+=(valgrind)
fi
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if ! apt-get install -y -qq "${need[@]}" >/dev/null; then
    # nginx-light is not in every release; fall back to nginx, and treat the profilers as optional
    need=("${need[@]/nginx-light/nginx}")
    for p in "${need[@]}"; do apt-get install -y -qq "$p" >/dev/null || echo "could not install $p"; done
  fi
fi
for t in nginx nmap openssl python3; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done

ulimit -n 65536 || ulimit -n "$(ulimit -Hn)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); busiest processes now:"
ps -eo pcpu,comm --sort=-pcpu | sed -n '2,5p' | sed 's/^/  /'
echo "ulimit -n: $(ulimit -n); cores: $(nproc); $(nginx -v 2>&1); $(nmap --version | head -1); $(openssl version)"

if ss -Hltn | awk '{print $4}' | sed 's/.*://' | awk -v a="$BASE_PORT" -v b="$LAST_PORT" '$1>=a && $1<=b {f=1} END {exit !f}'; then
  echo "some port in $BASE_PORT-$LAST_PORT is already in use; set BASE_PORT" >&2
  exit 1
fi

# CERTFLEET_BIN=/path/to/certfleet: measure that binary (e.g. an older commit's release
# build, for a before/after comparison in one sitting) instead of building this tree.
CF=${CERTFLEET_BIN:-$ROOT/target/release/certfleet}
if has_tool certfleet; then
  if [[ $SKIP_BUILD != 1 && -z ${CERTFLEET_BIN:-} ]]; then
    say "cargo build --release -p certfleet"
    (cd "$ROOT" && cargo build --release -p certfleet 2>&1 | tail -3)
  fi
  [[ -x $CF ]] || { echo "no $CF" >&2; exit 1; }
fi

if [[ $BENCH_NICE != 0 ]]; then
  # With autogroup scheduling (kernel.sched_autogroup_enabled=1) nice only ranks processes
  # inside one session's autogroup; so run in a session of our own and lower the nice of
  # its autogroup too.
  if [[ -z ${BENCH_IN_SESSION:-} && -r /proc/$$/autogroup ]] && command -v setsid >/dev/null; then
    BENCH_IN_SESSION=1 SKIP_BUILD=1 exec setsid -w bash "$HERE/probe-throughput.sh"
  fi
  renice -n "$BENCH_NICE" -p $$ >/dev/null
  if [[ -w /proc/$$/autogroup ]]; then echo "$BENCH_NICE" >"/proc/$$/autogroup" || true; fi
  echo "running at nice $BENCH_NICE (children inherit it); autogroup: $(cat /proc/$$/autogroup 2>/dev/null || echo none)"
fi

T=$(mktemp -d /tmp/certfleet-bench.XXXXXX)
if has_tool certfleet; then
  # a private copy, so that a rebuild in the work tree during the run changes nothing
  cp "$CF" "$T/certfleet"
  CF=$T/certfleet
fi
NGINX_PID=
cleanup() {
  if [[ -n $NGINX_PID ]]; then
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
  fi
  if [[ $KEEP_TMP == 1 ]]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- 2. certificates
say "certificates (openssl CLI) in $T"
mkdir -p "$T/pki" "$T/nginx-tmp"
cd "$T/pki"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out root.key 2>/dev/null
openssl req -x509 -new -key root.key -sha256 -days 3650 -subj "/CN=certfleet bench root CA/O=certfleet bench" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out root.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out int.key 2>/dev/null
openssl req -new -key int.key -subj "/CN=certfleet bench issuing CA/O=certfleet bench" -out int.csr
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' >int.ext
openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -sha256 -days 1825 -extfile int.ext -out int.pem 2>/dev/null
echo "[" >leaves.json.tmp
for ((i = 0; i < N_LEAVES; i++)); do
  if ((i % 2 == 0)); then
    kind="ecdsa-p256"; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out leaf$i.key 2>/dev/null
  else
    kind="rsa-2048"; openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out leaf$i.key 2>/dev/null
  fi
  cn="leaf-$(printf %02d $i)-$kind.bench.certfleet.test"
  openssl req -new -key leaf$i.key -subj "/CN=$cn/O=certfleet bench" -out leaf$i.csr
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature%s\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,IP:127.0.0.1\n' \
    "$([[ $kind == rsa-2048 ]] && echo ,keyEncipherment)" "$cn" >leaf$i.ext
  openssl x509 -req -in leaf$i.csr -CA int.pem -CAkey int.key -CAserial root.srl -sha256 -days 365 -extfile leaf$i.ext -out leaf$i.pem 2>/dev/null
  cat leaf$i.pem int.pem >leaf$i.chain.pem
  sha256=$(openssl x509 -in leaf$i.pem -outform der | sha256sum | cut -d' ' -f1)
  sha1=$(openssl x509 -in leaf$i.pem -outform der | sha1sum | cut -d' ' -f1)
  ((i > 0)) && echo "," >>leaves.json.tmp
  printf '{"cn":"%s","kind":"%s","sha256":"%s","sha1":"%s","chain":"%s","key":"%s"}\n' \
    "$cn" "$kind" "$sha256" "$sha1" "$T/pki/leaf$i.chain.pem" "$T/pki/leaf$i.key" >>leaves.json.tmp
done
echo "]" >>leaves.json.tmp
mv leaves.json.tmp "$T/leaves.json"
cd "$ROOT"
echo "16 leaves (8 ECDSA P-256, 8 RSA-2048) under root -> intermediate (both ECDSA P-256); nginx sends leaf + intermediate"

# ---------------------------------------------------------------- nginx
say "nginx: $NGINX_WORKERS workers, ports $BASE_PORT-$LAST_PORT on 127.0.0.1..127.0.0.$ADDRS"
$PY nginx-conf "$T" "$PORTS" "$BASE_PORT" "$ADDRS" "$NGINX_WORKERS" "$N_LEAVES"
nginx -t -p "$T" -c "$T/nginx.conf" -e "$T/error.log" 2>&1 | tail -1
nginx -p "$T" -c "$T/nginx.conf" -e "$T/error.log" &
NGINX_PID=$!
$PY wait-ready "$PORTS" "$BASE_PORT" "$ADDRS" 30 || { tail -5 "$T/error.log"; exit 1; }
echo "nginx master pid $NGINX_PID ready"
nginx_cpu() { $PY cpu-seconds "$NGINX_PID"; }
HZ=$(getconf CLK_TCK)
# CPU seconds all CPUs spent busy since boot (user nice system irq softirq steal)
busy_seconds() { awk -v hz="$HZ" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat; }

$PY targets "$T/targets-1k.txt" "$PORTS" "$BASE_PORT" 1
$PY targets "$T/targets-10k.txt" "$PORTS" "$BASE_PORT" "$ADDRS"
head -n 100 "$T/targets-1k.txt" >"$T/targets-100.txt"
N1=$PORTS
N10=$((PORTS * ADDRS))

if ((QUIET_WAIT > 0)); then
  say "waiting up to ${QUIET_WAIT}s for load average < $QUIET_LOAD"
  end=$((SECONDS + QUIET_WAIT))
  while ((SECONDS < end)) && ! awk -v m="$QUIET_LOAD" '{ exit !($1 < m) }' /proc/loadavg; do sleep 10; done
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

ROWS=$T/rows.tsv
: >"$ROWS"

# measure OUT ERR CMD...: runs CMD with stdout to OUT, sets WALL (s), CCPU (client user+sys s),
# NCPU (nginx CPU s during the run), OCPU (CPU s used by anything else on the machine during
# the run: other people's builds share these 2 cores, so this shows how clean a run was),
# RSS_KB (peak RSS of the largest process), RC
measure() {
  local out=$1 err=$2; shift 2
  local n0 t0 t1 n1 b0 b1
  n0=$(nginx_cpu)
  b0=$(busy_seconds)
  t0=$EPOCHREALTIME
  set +e
  /usr/bin/time -f '%U %S %M' -o "$T/rusage" "$@" >"$out" 2>"$err"
  RC=$?
  set -e
  t1=$EPOCHREALTIME
  b1=$(busy_seconds)
  n1=$(nginx_cpu)
  WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  read -r u s RSS_KB < <(tail -1 "$T/rusage")
  CCPU=$(awk -v a="$u" -v b="$s" 'BEGIN { printf "%.2f", a + b }')
  NCPU=$(fsub "$n1" "$n0")
  OCPU=$(awk -v b="$(fsub "$b1" "$b0")" -v c="$CCPU" -v n="$NCPU" 'BEGIN { o = b - c - n; if (o < 0) o = 0; printf "%.2f", o }')
}

# runs LABEL N REPEATS CHECK-FN CMD...: repeat, check every run, append a row (median wall)
runs() {
  local label=$1 n=$2 reps=$3 check=$4; shift 4
  local walls=() ccpus=() ncpus=() ocpus=() r w m worst_r=999999999 worst_w=0 worst_m=0 k
  for ((k = 1; k <= reps; k++)); do
    measure "$T/out" "$T/err" "$@"
    echo "  run $k: ${WALL}s wall, $(fdiv "$n" "$WALL") endpoints/s, client CPU ${CCPU}s, nginx CPU ${NCPU}s, other CPU ${OCPU}s, rc $RC"
    [[ $RC == 0 ]] || { echo "  stderr:"; tail -5 "$T/err" | sed 's/^/    /'; }
    $check "$n" "$label" "$T/corr"
    read -r r w m <"$T/corr"
    ((r < worst_r)) && worst_r=$r
    ((w > worst_w)) && worst_w=$w
    ((m > worst_m)) && worst_m=$m
    walls+=("$WALL"); ccpus+=("$CCPU"); ncpus+=("$NCPU"); ocpus+=("$OCPU")
  done
  local wmed cmed nmed omed
  wmed=$($PY median "${walls[@]}"); cmed=$($PY median "${ccpus[@]}"); nmed=$($PY median "${ncpus[@]}"); omed=$($PY median "${ocpus[@]}")
  LAST_EPS=$(fdiv "$n" "$wmed")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n' "$label" "$n" "$wmed" "$LAST_EPS" "$cmed" "$nmed" "$omed" \
    "$worst_r" "$worst_w" "$worst_m" >>"$ROWS"
  echo "  => $label: median ${wmed}s, $LAST_EPS endpoints/s (worst run: $worst_r right, $worst_w wrong, $worst_m missing)"
}

check_cf() { $PY check-certfleet "$T/expected.json" "$T/out" "$1" "$2" "$3"; }
check_nmap() { $PY check-nmap "$T/expected.json" "$T/nmap.xml" "$1" "$2" "$3"; }
check_openssl() { $PY check-openssl "$T/expected.json" "$T/out" "$1" "$2" "$3"; }

cf_args() { # concurrency -> args
  if [[ $1 == default ]]; then echo ""; else echo "--concurrency $1"; fi
}

# ---------------------------------------------------------------- 3a. certfleet
BEST_C=
BEST_EPS=0
DEFAULT_EPS=
if has_tool certfleet; then
  say "certfleet smoke: $CF probe 127.0.0.1:$BASE_PORT --format json --timeout $TIMEOUT"
  "$CF" probe "127.0.0.1:$BASE_PORT" --format json --timeout "$TIMEOUT" >"$T/smoke.json"
  head -c 700 "$T/smoke.json"; echo
  # with the bench root as an extra trust root the leaf should carry no findings at all
  "$CF" probe "127.0.0.1:$BASE_PORT" "127.0.0.1:$((BASE_PORT + 1))" --format json --timeout "$TIMEOUT" --ca-file "$T/pki/root.pem" >"$T/smoke-ca.json" || true
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    o = json.loads(l); print("  with --ca-file root.pem:", o.get("target"), o.get("status"), "findings:", o.get("findings"))' "$T/smoke-ca.json"
  # warm-up (page cache, first-run costs), not counted
  "$CF" probe -f "$T/targets-1k.txt" --format json --timeout "$TIMEOUT" >/dev/null 2>&1 || true
  for c in $CONCURRENCIES; do
    say "certfleet probe -f targets-1k.txt --format json --timeout $TIMEOUT $(cf_args "$c")  [$REPEAT runs]"
    # shellcheck disable=SC2046
    runs "certfleet c=$c" "$N1" "$REPEAT" check_cf "$CF" probe -f "$T/targets-1k.txt" --format json --timeout "$TIMEOUT" $(cf_args "$c")
    [[ $c == default ]] && DEFAULT_EPS=$LAST_EPS
    if ((LAST_EPS > BEST_EPS)); then BEST_EPS=$LAST_EPS; BEST_C=$c; fi
  done
  echo "best certfleet: concurrency $BEST_C, $BEST_EPS endpoints/s; default: ${DEFAULT_EPS:-not run} endpoints/s"
fi

# ---------------------------------------------------------------- 3b. nmap
NMAP_EPS=
if has_tool nmap; then
  say "nmap -Pn -n -p $BASE_PORT-$LAST_PORT --script +ssl-cert $NMAP_ARGS -oX nmap.xml 127.0.0.1  [$NMAP_REPEAT runs]"
  # shellcheck disable=SC2086
  runs "nmap --script +ssl-cert" "$N1" "$NMAP_REPEAT" check_nmap \
    nmap -Pn -n -p "$BASE_PORT-$LAST_PORT" --script +ssl-cert $NMAP_ARGS -oX "$T/nmap.xml" 127.0.0.1
  NMAP_EPS=$LAST_EPS
fi

# ---------------------------------------------------------------- 3c. openssl s_client
# Two variants, both one s_client per port, 64 at a time:
#  plain:  openssl s_client -connect ... | openssl x509 -outform der | sha256sum (the usual recipe);
#          with OpenSSL 3.0 each s_client spends ~60 ms of CPU loading the system CA bundle
#          and openssl x509 ~40 ms starting up, so it measures process start-up more than TLS.
#  no-CA:  s_client -no-CAfile -no-CApath -no-CAstore (it verifies nothing anyway), and the leaf
#          PEM turned into DER with sed + base64 -d: one openssl process per port.
OPENSSL_EPS=
OPENSSL_PLAIN_EPS=
if has_tool openssl; then
  say "openssl plain: seq ports | xargs -P $OPENSSL_PARALLEL -n 1: openssl s_client -connect 127.0.0.1:PORT </dev/null | openssl x509 -outform der | sha256sum  [$OPENSSL_REPEAT runs]"
  runs "openssl s_client x$OPENSSL_PARALLEL (plain)" "$N1" "$OPENSSL_REPEAT" check_openssl bash -c '
    seq "$1" "$2" | xargs -P "$3" -n 1 sh -c '"'"'h=$(openssl s_client -connect 127.0.0.1:$1 </dev/null 2>/dev/null | openssl x509 -outform der 2>/dev/null | sha256sum); echo "$1 ${h%% *}"'"'"' _
  ' _ "$BASE_PORT" "$LAST_PORT" "$OPENSSL_PARALLEL"
  OPENSSL_PLAIN_EPS=$LAST_EPS
  say "openssl no-CA: seq ports | xargs -P $OPENSSL_PARALLEL -n 1: openssl s_client -no-CAfile -no-CApath -no-CAstore -connect 127.0.0.1:PORT </dev/null | sed (leaf PEM body) | base64 -d | sha256sum  [$OPENSSL_REPEAT runs]"
  runs "openssl s_client x$OPENSSL_PARALLEL (no-CA)" "$N1" "$OPENSSL_REPEAT" check_openssl bash -c '
    seq "$1" "$2" | xargs -P "$3" -n 1 sh -c '"'"'h=$(openssl s_client -no-CAfile -no-CApath -no-CAstore -connect 127.0.0.1:$1 </dev/null 2>/dev/null | sed -n "/-----BEGIN/,/-----END/{/-----/d;p}" | base64 -d 2>/dev/null | sha256sum); echo "$1 ${h%% *}"'"'"' _
  ' _ "$BASE_PORT" "$LAST_PORT" "$OPENSSL_PARALLEL"
  OPENSSL_EPS=$LAST_EPS
fi

# ---------------------------------------------------------------- 5. peak memory
RSS_LINES=()
if has_tool certfleet; then
  MC=${BEST_C:-default}
  for set in 100 1k 10k; do
    case $set in 100) n=100 ;; 1k) n=$N1 ;; 10k) n=$N10 ;; esac
    say "peak memory: /usr/bin/time -v certfleet probe -f targets-$set.txt --format json $(cf_args "$MC") ($n targets)"
    n0=$(nginx_cpu); b0=$(busy_seconds); t0=$EPOCHREALTIME
    # shellcheck disable=SC2046
    /usr/bin/time -v "$CF" probe -f "$T/targets-$set.txt" --format json --timeout "$TIMEOUT" $(cf_args "$MC") >"$T/out" 2>"$T/timev" || true
    t1=$EPOCHREALTIME; b1=$(busy_seconds); n1=$(nginx_cpu)
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$T/timev")
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    cc=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$T/timev")
    echo "  max RSS ${rss} KiB ($(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}') MiB), ${wall}s, $(fdiv "$n" "$wall") endpoints/s"
    check_cf "$n" "certfleet $set targets" "$T/corr"
    read -r r w m <"$T/corr"
    nc=$(fsub "$n1" "$n0")
    oc=$(awk -v b="$(fsub "$b1" "$b0")" -v c="$cc" -v n="$nc" 'BEGIN { o = b - c - n; if (o < 0) o = 0; printf "%.2f", o }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "certfleet c=$MC (memory run)" "$n" "$wall" "$(fdiv "$n" "$wall")" \
      "$cc" "$nc" "$oc" "$r" "$w" "$m" "$(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}')" >>"$ROWS"
    RSS_LINES+=("$set targets: $(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}') MiB")
  done
fi

# ---------------------------------------------------------------- 6. profile
PROFILE_NOTE=
set +o pipefail # perf report | head
if [[ $PROFILE == 1 ]] && has_tool certfleet; then
  MC=${BEST_C:-default}
  if perf stat -e instructions true 2>&1 | grep -q 'instructions' && ! perf stat -e instructions true 2>&1 | grep -q 'not supported'; then
    EV=(-e cycles); PROFILE_NOTE="perf record (hardware cycles)"
  elif perf record -e cpu-clock -o "$T/p0.data" true >/dev/null 2>&1; then
    EV=(-e cpu-clock); PROFILE_NOTE="perf record -e cpu-clock (no hardware counters here: 'perf stat -e instructions' is not supported)"
  else
    EV=()
  fi
  if ((${#EV[@]})); then
    say "profile, system-wide, during certfleet probe of $N10 targets (c=$MC): $PROFILE_NOTE"
    # shellcheck disable=SC2046
    perf record -a "${EV[@]}" -F 999 -o "$T/perf-sys.data" -- "$CF" probe -f "$T/targets-10k.txt" --format json --timeout "$TIMEOUT" $(cf_args "$MC") >/dev/null 2>"$T/perf.err" || true
    echo "  CPU samples by command (2 cores; 'swapper' = idle):"
    perf report -i "$T/perf-sys.data" --stdio --no-children --sort comm 2>/dev/null | grep -E '^\s+[0-9.]+%' | head -8 | sed 's/^/  /'
    echo "  nginx by DSO (share of all samples; libcrypto = RSA/ECDSA signing, x25519, AES):"
    perf report -i "$T/perf-sys.data" --stdio --no-children --comm nginx --sort dso 2>/dev/null | grep -E '^\s+[0-9.]+%' | head -6 | sed 's/^/  /'
    say "profile of the certfleet process alone (all threads), $N10 targets"
    # shellcheck disable=SC2046
    perf record "${EV[@]}" -F 1999 -g -o "$T/perf-cf.data" -- "$CF" probe -f "$T/targets-10k.txt" --format json --timeout "$TIMEOUT" $(cf_args "$MC") >/dev/null 2>"$T/perf.err" || true
    echo "  by thread (pid:comm; the main thread is the one named after the binary):"
    perf report -i "$T/perf-cf.data" --stdio --no-children --sort pid 2>/dev/null | grep -E '^\s+[0-9.]+%' | head -6 | sed 's/^/  /'
    echo "  by DSO:"
    perf report -i "$T/perf-cf.data" --stdio --no-children --sort dso 2>/dev/null | grep -E '^\s+[0-9.]+%' | head -6 | sed 's/^/  /'
    echo "  top symbols (self):"
    perf report -i "$T/perf-cf.data" --stdio --no-children --sort sym -g none 2>/dev/null | grep -E '^\s+[0-9.]+%' | head -30 | sed 's/^/  /'
    perf report -i "$T/perf-cf.data" --stdio --no-children --sort sym -g none 2>/dev/null | grep -E '^\s+[0-9.]+%' >"$T/perf-syms.txt"
    echo "  grouped (self time by area):"
    python3 - "$T/perf-syms.txt" <<'EOF'
import re, sys, collections
groups = [
    ("kernel: TCP/loopback, syscalls, scheduler", r"^\[k\]"),
    ("ring crypto (x25519/p256/aes-gcm/sha/rsa bignum)", r"ring|_mont|p256|x25519|fiat|aes|gcm|chacha|poly1305|sha256_block|sha512_block|bn_|limbs|GFp|nistz|ecp_|LIMBS|ecdsa|ghash|^fe[0-9_]|^ge_|^sc_|_fe_|x25519"),
    ("stdout (line-buffered JSON lines)", r"stdio|memrchr|LineWriter"),
    ("certfleet prober/model code", r"certfleet"),
    ("rustls handshake/record layer", r"rustls"),
    ("x509/der parsing, webpki verify", r"x509|der_parser|asn1|webpki|nom::|oid|pem"),
    ("JSON output (serde)", r"serde|json"),
    ("tokio runtime / futures", r"tokio|mio|futures|parking|epoll"),
    ("allocator (malloc/free)", r"malloc|free|realloc|calloc|_int_|arena|tcache"),
    ("memcpy/memmove/memset", r"mem(cpy|move|set|cmp)"),
]
tot = collections.Counter()
for line in open(sys.argv[1]):
    m = re.match(r"\s*([0-9.]+)%\s+(\[.\])\s+(.*)", line)
    if not m:
        continue
    pct, kind, sym = float(m.group(1)), m.group(2), m.group(3)
    name = "other"
    for g, rx in groups:
        if (kind == "[k]") if g.startswith("kernel") else (kind != "[k]" and re.search(rx, sym, re.I)):
            name = g
            break
    tot[name] += pct
for g, p in tot.most_common():
    print(f"    {p:5.1f}%  {g}")
EOF
  elif command -v valgrind >/dev/null; then
    PROFILE_NOTE="valgrind --tool=callgrind, 200 targets"
    say "profile: $PROFILE_NOTE"
    head -n 200 "$T/targets-1k.txt" >"$T/targets-200.txt"
    valgrind --tool=callgrind --callgrind-out-file="$T/callgrind.out" "$CF" probe -f "$T/targets-200.txt" --format json --timeout 30s --concurrency 64 >/dev/null 2>"$T/cg.err" || true
    callgrind_annotate "$T/callgrind.out" 2>/dev/null | head -40 | sed 's/^/  /'
  fi
fi

# ---------------------------------------------------------------- summary
say "summary: $N1 loopback TLS endpoints (nginx $NGINX_WORKERS workers, 8 ECDSA + 8 RSA leaves), $(nproc) cores shared by client and server"
$PY table "$ROWS"
echo
[[ -n ${BEST_C:-} ]] && echo "  certfleet best:    $BEST_EPS endpoints/s (--concurrency $BEST_C); default concurrency: ${DEFAULT_EPS:-n/a} endpoints/s" || true
[[ -n $NMAP_EPS ]] && echo "  nmap:              $NMAP_EPS endpoints/s  (nmap -Pn -n --script +ssl-cert $NMAP_ARGS)" || true
[[ -n $OPENSSL_EPS ]] && echo "  openssl s_client:  $OPENSSL_EPS endpoints/s no-CA variant, $OPENSSL_PLAIN_EPS endpoints/s plain  (xargs -P $OPENSSL_PARALLEL)" || true
if [[ -n ${BEST_C:-} && -n $NMAP_EPS ]]; then
  echo "  ratio certfleet/nmap: $(awk -v a="$BEST_EPS" -v b="$NMAP_EPS" 'BEGIN{printf "%.1fx", a/b}') (best); $(awk -v a="${DEFAULT_EPS:-0}" -v b="$NMAP_EPS" 'BEGIN{printf "%.1fx", a/b}') (default concurrency)"
fi
if [[ -n ${BEST_C:-} && -n $OPENSSL_EPS ]]; then
  echo "  ratio certfleet/openssl: $(awk -v a="$BEST_EPS" -v b="$OPENSSL_EPS" 'BEGIN{printf "%.1fx", a/b}')"
fi
((${#RSS_LINES[@]})) && echo "  certfleet peak RSS (c=${BEST_C:-default}): ${RSS_LINES[*]}" || true
[[ -n $PROFILE_NOTE ]] && echo "  profile: $PROFILE_NOTE" || true
exit 0
}
