#!/usr/bin/env bash
# Whole-process ingest benchmark: the release collector with its local ClickHouse, the load
# generator sending OTLP/gRPC, and the collector's own CPU time and memory read from /proc.
# Reports spans per CPU-second of the collector (ClickHouse and the generator not counted),
# peak resident memory, and the lag from send to visible in `plumb top`.
#
#   scripts/bench-ingest.sh [RATE] [SECONDS]     RATE=0 sends as fast as the collector accepts
#   COLLECTOR_ARGS="--trace-window 0" scripts/bench-ingest.sh ...   extra collector options
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-0}"
seconds="${2:-30}"
. scripts/bench-collector.sh
# shellcheck disable=SC2086 # COLLECTOR_ARGS is a list of options
start_collector ${COLLECTOR_ARGS:-}
# The spans the trace window holds, sampled every second (the peak is reported).
while sleep 1; do
    curl -fsS "http://$query/metrics" 2>/dev/null | awk '/^plumb_trace_spans_held /{print $2}' || true
done >"$dir/held" &
sampler=$!

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks)
report=$("$bin/plumb-loadgen" --endpoint "http://$grpc" --rate "$rate" --duration "${seconds}s" --json)
after=$(ticks)
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
held=$(sort -n "$dir/held" | tail -1)

python3 - "$report" "$before" "$after" "$hz" "$rss_kib" "${held:-0}" <<'PY'
import json, sys
report = json.loads(sys.argv[1])
cpu_s = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
spans = report["spans_accepted"]
print(f"spans accepted:           {spans}")
print(f"send rate:                {report['spans_per_second']:.0f} spans/s over {report['seconds']:.1f} s")
print(f"requests refused:         {report['requests_refused']}")
print(f"collector CPU:            {cpu_s:.2f} s ({100*cpu_s/report['seconds']:.1f}% of one core)")
print(f"spans per CPU-second:     {spans/cpu_s:.0f}" if cpu_s > 0 else "spans per CPU-second: n/a")
print(f"CPU-seconds per 1M spans: {1e6*cpu_s/spans:.2f}" if spans else "")
print(f"peak resident memory:     {int(sys.argv[5])/1024:.1f} MiB")
print(f"peak spans in trace window: {sys.argv[6]}")
PY
# Lag: from the end of sending until everything accepted is visible in `plumb top`.
target=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['spans_accepted'])" "$report")
sent_at=$(date +%s.%N)
while :; do
    seen=$("$bin/plumb" --endpoint "http://$query" top --since 10m --kind all --limit 1000 --json |
        python3 -c 'import json,sys; print(sum(e["requests"] for e in json.load(sys.stdin)["endpoints"]))')
    if [ "$seen" -ge "$target" ]; then break; fi
    sleep 0.1
done
lag=$(python3 -c "import time,sys; print(f'{time.time()-float(sys.argv[1]):.2f}')" "$sent_at")
echo "lag last send -> visible: ${lag} s (flush interval 2 s)"
