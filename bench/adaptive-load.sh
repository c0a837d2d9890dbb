#!/usr/bin/env bash
# What probe intervals that follow the certificate cost at fleet scale (issue 18): probes
# per day for ENDPOINTS endpoints with a fixed 24-hour interval and with adaptive
# intervals, by certificate kind, and how soon rotations are seen under each. The driver
# (store/examples/adaptive_load.rs) runs the store's own ProbeSchedule over one simulated
# day; no database, no network.
#
#   bench/adaptive-load.sh [ENDPOINTS]        default 1000000; about a minute
set -euo pipefail
cd "$(dirname "$0")/.."
endpoints="${1:-1000000}"
cargo build --release --quiet -p certfleet-store --example adaptive_load
/usr/bin/time -f "simulation: %e s, %M KiB peak" \
  target/release/examples/adaptive_load "$endpoints"
