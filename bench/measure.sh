# Sourced by the agent benches: `measure LABEL COMMAND...` prints the CPU time (user +
# system) per run, averaged over $RUNS runs in one loop under GNU time (whose own figures
# are only 10 ms precise), and the peak RSS of the largest run. GNU time forks from
# itself, so a child's peak is not inflated by a big parent's pages the way it is when a
# Python or shell process forks it. Needs $WORK (a scratch directory) and $RUNS.
measure() {
  local label="$1"; shift
  local out="$WORK/time.txt"
  /usr/bin/time -o "$out" -f "%U %S %M %e" \
    sh -c 'runs=$1; shift; i=0; while [ $i -lt $runs ]; do "$@" >/dev/null 2>&1 || exit 1; i=$((i+1)); done' \
    sh "$RUNS" "$@"
  awk -v label="$label" -v runs="$RUNS" 'END {
    printf "%-46s cpu %8.1f ms   peak rss %6.1f MiB   wall %6.0f ms\n", label, ($1 + $2) * 1000 / runs, $3 / 1024, $4 * 1000 / runs
  }' "$out"
}
