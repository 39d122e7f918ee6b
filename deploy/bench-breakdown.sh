#!/usr/bin/env bash
# What the trace window and breakdown cost the collector: the whole-process ingest benchmark run
# twice back to back, with the breakdown off (--trace-window 0) and on (the default 10 s window).
#
#   deploy/bench-breakdown.sh [RATE] [SECONDS]    RATE=0 sends as fast as the collector accepts
set -euo pipefail
cd "$(dirname "$0")/.."
for args in "--trace-window 0" "--trace-window 10s"; do
    echo "== collector $args"
    COLLECTOR_ARGS="$args" deploy/bench-ingest.sh "${1:-0}" "${2:-20}"
done
