#!/usr/bin/env bash
# Plumb's main job on one machine: a local ClickHouse (started and stopped by the collector),
# the collector, OTLP traffic from the load generator, then the slow-endpoint view.
#
#   PLUMB_DEMO_SECONDS   how long traffic runs (default 30)
#   PLUMB_DEMO_RATE      spans per second (default 5000)
#   PLUMB_DATA_DIR       where ClickHouse keeps its data (default /tmp/plumb-quickstart)
#   PLUMB_KEEP_RUNNING=1 leave the collector running at the end
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
cargo build --release --locked -p plumb-collector --bins

seconds="${PLUMB_DEMO_SECONDS:-30}"
rate="${PLUMB_DEMO_RATE:-5000}"
data_dir="${PLUMB_DATA_DIR:-/tmp/plumb-quickstart}"
bin=target/release
log="$data_dir/collector.log"
mkdir -p "$data_dir"

"$bin/plumb-collector" --data-dir "$data_dir" --flush-interval 2s >"$log" 2>&1 &
collector=$!
stop_collector() { kill -TERM "$collector" 2>/dev/null && wait "$collector" 2>/dev/null || true; }
[ "${PLUMB_KEEP_RUNNING:-0}" = 1 ] || trap stop_collector EXIT

echo "waiting for the collector (log: $log)"
for _ in $(seq 1 120); do
    if curl -fsS http://127.0.0.1:7318/readyz >/dev/null 2>&1; then break; fi
    if ! kill -0 "$collector" 2>/dev/null; then cat "$log"; exit 1; fi
    sleep 0.5
done
curl -fsS http://127.0.0.1:7318/readyz

echo "sending ${rate} spans/s for ${seconds}s from 5 services"
"$bin/plumb-loadgen" --rate "$rate" --duration "${seconds}s"
sleep 3

echo
echo "== slowest endpoints (plumb top --since 5m) =="
"$bin/plumb" top --since 5m --limit 15
echo
echo "== where the time goes (plumb top --by time) =="
"$bin/plumb" top --since 5m --by time --limit 5
echo
echo "query API: http://127.0.0.1:7318/api/v1/top?since=5m   metrics: http://127.0.0.1:7318/metrics"
