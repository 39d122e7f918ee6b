#!/usr/bin/env bash
# Instructions per span of the whole collector process, counted by valgrind's callgrind: the
# collector as scripts/build-release.sh builds it (PGO; PLUMB_PGO=0 for the plain build) with
# its local ClickHouse, 5 s to settle, the load generator at RATE spans/s (500-span requests, 4
# connections) for SECONDS, 10 s to drain, then every instruction the process ran (start-up,
# timers and flushers included) over the spans sent. Unlike CPU time it does not move with the
# machine's load, so two builds compare in one figure; the profile is left in OUT for
# `callgrind_annotate --inclusive=yes OUT`.
#
#   scripts/bench-instructions.sh [RATE] [SECONDS] [OUT]     defaults: 1000 20 target/callgrind.plumb.out
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-1000}"
seconds="${2:-20}"
out="$(realpath -m "${3:-target/callgrind.plumb.out}")"
if ! command -v valgrind >/dev/null; then
    apt-get update && apt-get install -y valgrind
fi
. scripts/bench-collector.sh
COLLECTOR_WRAP="valgrind --tool=callgrind --callgrind-out-file=$out" start_collector
sleep 5
report=$("$bin/plumb-loadgen" --endpoint "http://$grpc" --rate "$rate" --batch 500 \
    --concurrency 4 --duration "${seconds}s" --json)
sleep 10
kill -TERM "$pid"
wait "$pid" || true
pid=
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
python3 - "$report" "$total" "$out" <<'PY'
import json, sys
report, total, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sent = report["spans_accepted"]
print(f"spans accepted:        {sent}")
print(f"instructions:          {total}")
print(f"instructions per span: {total // sent}")
print(f"profile:               {out}")
PY
