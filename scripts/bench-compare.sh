#!/usr/bin/env bash
# Two (or more) collector settings compared: the whole-process ingest benchmark run back to back
# once per setting. By default, what the trace window and breakdown cost (--trace-window 0 against
# the default 10 s window).
#
#   scripts/bench-compare.sh [RATE] [SECONDS] ["OPTIONS A" "OPTIONS B" ...]   RATE=0: as fast as it goes
#   scripts/bench-compare.sh 0 20 "--journal-sync 0" "--journal-sync 1s"     what the journal costs
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-0}"
seconds="${2:-20}"
shift $(($# < 2 ? $# : 2))
[ $# -gt 0 ] || set -- "--trace-window 0" "--trace-window 10s"
for args in "$@"; do
    echo "== collector $args"
    COLLECTOR_ARGS="$args" scripts/bench-ingest.sh "$rate" "$seconds"
done
