#!/usr/bin/env bash
# Fuzzing, the long version (issue 9): every cargo-fuzz target in fuzz/ for FUZZ_SECONDS
# each, then one line of figures per target (executions, exec/s, corpus, coverage, crashes).
# The short version (each seed corpus through the same functions, stable toolchain) runs in
# `scripts/test` as ordinary unit tests of certfleet-prober and certfleet-web.
#
#   bench/fuzz.sh                          # all targets, 300 s each
#   FUZZ_SECONDS=60 bench/fuzz.sh starttls legacy_flight
#   JOBS=2 bench/fuzz.sh                   # two targets at a time (2 cores: leave at 1
#                                          # when anything else runs on the machine)
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz when
# missing. The seeds in fuzz/corpus/<target>/ are read, never written: what libFuzzer finds
# goes to fuzz/corpus-run/<target>/ (kept between runs, not committed), crashes to
# fuzz/artifacts/<target>/. Exit code 1 when any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

FUZZ_SECONDS="${FUZZ_SECONDS:-300}"
RSS_LIMIT_MB="${RSS_LIMIT_MB:-512}"
TIMEOUT_S="${TIMEOUT_S:-10}"      # one input taking longer is reported as a hang
JOBS="${JOBS:-1}"
SANITIZER="${SANITIZER:-address}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LOG_DIR="${LOG_DIR:-$ROOT/fuzz/logs}"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "needs a nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

cd "$ROOT/fuzz"
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
echo "building ${#targets[@]} targets (nightly, sanitizer $SANITIZER) ..." >&2
# One build for all targets (cargo fuzz builds one target or all of them).
if [ ${#targets[@]} -eq 1 ]; then
  cargo +nightly fuzz build --sanitizer "$SANITIZER" "${targets[0]}" >&2
else
  cargo +nightly fuzz build --sanitizer "$SANITIZER" >&2
fi
mkdir -p "$LOG_DIR"

run_one() {
  local target="$1" log="$LOG_DIR/$1.log" started ended status
  mkdir -p "corpus-run/$target" "artifacts/$target"
  local before
  before=$(find "artifacts/$target" -type f | wc -l)
  started=$(date +%s)
  set +e
  cargo +nightly fuzz run --sanitizer "$SANITIZER" "$target" \
    "corpus-run/$target" "corpus/$target" -- \
    -max_total_time="$FUZZ_SECONDS" -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT_S" \
    -print_final_stats=1 >"$log" 2>&1
  status=$?
  set -e
  ended=$(date +%s)
  local after
  after=$(find "artifacts/$target" -type f | wc -l)
  echo "$target $status $(( after - before )) $(( ended - started ))" >"$LOG_DIR/$target.status"
}

running=0
for target in "${targets[@]}"; do
  echo "fuzzing $target for ${FUZZ_SECONDS}s ..." >&2
  run_one "$target" &
  running=$(( running + 1 ))
  if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$(( running - 1 )); fi
done
wait

# Figures: libFuzzer's final stats (-print_final_stats=1) and its last status line
# ("#N DONE cov: C ft: F corp: U/S ... exec/s: E").
crashed=0
printf '\n| target | seconds | executions | exec/s | corpus (units / size) | new units | cov | ft | peak RSS MB | crashes |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for target in "${targets[@]}"; do
  log="$LOG_DIR/$target.log"
  read -r _ status artifacts seconds <"$LOG_DIR/$target.status"
  stat() { grep -a "^stat::$1:" "$log" | tail -1 | awk '{print $2}'; }
  line=$(grep -a -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  field() { echo "$line" | grep -o -E "$1: [^ ]+" | head -1 | cut -d' ' -f2; }
  # libFuzzer's own "Done N runs in S second(s)"; the wall time when it stopped on a crash.
  done_seconds=$(grep -a -o -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | awk '{print $5}')
  seconds="${done_seconds:-$seconds}"
  execs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  new=$(stat new_units_added)
  rss=$(stat peak_rss_mb)
  crashes="$artifacts"
  if [ "$status" != 0 ] || [ "$artifacts" != 0 ]; then
    crashed=1
    crashes="$artifacts (exit $status; see $log)"
  fi
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$target" "$seconds" \
    "${execs:-?}" "${rate:-?}" "$(field corp)" "${new:-?}" "$(field cov)" "$(field ft)" \
    "${rss:-?}" "$crashes"
done
printf '\nlogs: %s; new inputs: fuzz/corpus-run/; crashes: fuzz/artifacts/\n' "$LOG_DIR"
exit "$crashed"
