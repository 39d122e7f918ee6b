#!/usr/bin/env bash
# ClickHouse away under steady load: the release collector (with its local ClickHouse) takes
# OTLP/gRPC from the load generator while ClickHouse is frozen (SIGSTOP) for the middle half of
# the run, then thawed (SIGCONT). Reports what was accepted and refused while it was away, how
# much the disk spool grew, how long the spool took to drain once ClickHouse was back, and checks
# that every accepted span is counted in `plumb top`.
#
#   scripts/bench-outage.sh [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-20000}"
seconds="${2:-40}"
. scripts/bench-collector.sh
# shellcheck disable=SC2086 # COLLECTOR_ARGS is a list of options
start_collector --write-timeout 2s ${COLLECTOR_ARGS:-}
# The ClickHouse server itself, not the watchdog shell that started it.
server=$(for p in $(pgrep -f -- "--config-file=$dir/"); do
    [ "$(cat "/proc/$p/comm")" != sh ] && echo "$p"; done | head -1)
metric() { curl -fsS "http://$query/metrics" 2>/dev/null | awk -v m="$1" '$1 == m {print $2}'; }
# The spool's size, sampled every half second (the peak is reported).
while sleep 0.5; do echo "$(date +%s.%N) $(metric plumb_spool_bytes || echo 0)"; done >"$dir/spool-samples" &
sampler=$!

"$bin/plumb-loadgen" --endpoint "http://$grpc" --rate "$rate" --duration "${seconds}s" --json >"$dir/report" &
loadgen=$!
sleep $((seconds / 4))
kill -STOP "$server"
echo "ClickHouse frozen for $((seconds / 2)) s"
sleep $((seconds / 2))
kill -CONT "$server"
thawed=$(date +%s.%N)
wait $loadgen
until [ "$(metric plumb_spool_bytes)" = "0" ]; do sleep 0.2; done
sleep 1
spooled=$(curl -fsS "http://$query/metrics" | awk '/^plumb_batches_spooled_total\{table="spans"\}/ {print $2}')

report=$(cat "$dir/report")
target=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['spans_accepted'])" "$report")
# Requests counted by `plumb top` over every endpoint.
counted() {
    "$bin/plumb" --endpoint "http://$query" top --since 10m --kind all --limit 1000 --json |
        python3 -c 'import json,sys; print(sum(e["requests"] for e in json.load(sys.stdin)["endpoints"]))'
}
until [ "$(counted)" -ge "$target" ]; do sleep 0.2; done
# A little later, in case a late write would count something twice.
sleep 3
seen=$(counted)
python3 - "$report" "$dir/spool-samples" "${spooled:-0}" "$thawed" "$seen" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
samples = [tuple(map(float, line.split())) for line in open(sys.argv[2]) if len(line.split()) == 2]
peak, batches, thawed = max(b for _, b in samples), sys.argv[3], float(sys.argv[4])
drain = min(t for t, b in samples if t > thawed and b == 0) - thawed
away_spans = r["spans_per_second"] * r["seconds"] / 2
print(f"spans accepted:        {r['spans_accepted']} ({r['spans_per_second']:.0f}/s over {r['seconds']:.1f} s)")
print(f"requests refused:      {r['requests_refused']}")
print(f"spool peak:            {peak/2**20:.1f} MiB in {batches} span batches, about {peak/max(away_spans,1):.0f} bytes per span sent while away")
print(f"spool drained in:      {drain:.1f} s after ClickHouse came back, under the same load")
print(f"counted in plumb top:  {sys.argv[5]} (exactly the accepted spans: {int(sys.argv[5]) == r['spans_accepted']})")
PY
