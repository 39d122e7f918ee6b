#!/usr/bin/env bash
# Plumb's main job on one machine: a local ClickHouse (started and stopped by the collector),
# the collector, a two-service demo backend instrumented with plumb-agent plus synthetic OTLP
# load from five more services, traffic for both, then the slow-endpoint view: the ranking, one
# endpoint's breakdown and the waterfall of its slowest trace.
#
#   PLUMB_DEMO_SECONDS   how long traffic runs (default 30)
#   PLUMB_DEMO_RATE      demo backend requests per second (default 50)
#   PLUMB_LOAD_RATE      synthetic spans per second from plumb-loadgen (default 2000; 0 to skip)
#   PLUMB_DATA_DIR       where ClickHouse keeps its data (default /tmp/plumb-quickstart)
#   PLUMB_KEEP_RUNNING=1 leave everything running at the end
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --locked -p plumb-collector -p plumb-cli -p plumb-loadgen -p plumb-sidecar -p plumb-demo

seconds="${PLUMB_DEMO_SECONDS:-30}"
rate="${PLUMB_DEMO_RATE:-50}"
load="${PLUMB_LOAD_RATE:-2000}"
data_dir="${PLUMB_DATA_DIR:-/tmp/plumb-quickstart}"
bin=target/release
mkdir -p "$data_dir"

pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
[ "${PLUMB_KEEP_RUNNING:-0}" = 1 ] || trap stop_all EXIT

# Alerting: one probe of the demo's shop and one rule over its traffic (no receiver delivers
# anywhere here; see the README for webhooks, Slack and PagerDuty).
cat >"$data_dir/alerts.toml" <<'TOML'
evaluation_interval = "5s"

[[probe]]
name = "shop-users"
kind = "http"
url = "http://127.0.0.1:8081/users/1"
interval = "5s"
failure_threshold = 2
conditions = ["[STATUS] == 200", "[RESPONSE_TIME] < 500ms"]
labels = { service = "shop" }

[[rule]]
name = "shop-checkout-errors"
service = "shop"
operation = "POST /checkout"
signal = "error_rate"
above = "20%"
window = "5m"

[route]
receiver = "nowhere"
group_wait = "5s"

[[receiver]]
name = "nowhere"
TOML
"$bin/plumb" check-config "$data_dir/alerts.toml"

"$bin/plumb-collector" --data-dir "$data_dir" --flush-interval 2s \
    --alerting-config "$data_dir/alerts.toml" >"$data_dir/collector.log" 2>&1 &
pids+=($!)
echo "waiting for the collector (log: $data_dir/collector.log)"
for _ in $(seq 1 120); do
    if curl -fsS http://127.0.0.1:7318/readyz >/dev/null 2>&1; then break; fi
    if ! kill -0 "${pids[0]}" 2>/dev/null; then cat "$data_dir/collector.log"; exit 1; fi
    sleep 0.5
done
curl -fsS http://127.0.0.1:7318/readyz

# The demo backend: shop calls recs; both export to the collector with plumb-agent.
"$bin/plumb-demo" serve --service recs --addr 127.0.0.1:8082 --otlp-endpoint http://127.0.0.1:4317 \
    2>"$data_dir/recs.log" &
pids=("$!" "${pids[@]}")
"$bin/plumb-demo" serve --service shop --addr 127.0.0.1:8081 --recs-url http://127.0.0.1:8082 \
    --otlp-endpoint http://127.0.0.1:4317 2>"$data_dir/shop.log" &
pids=("$!" "${pids[@]}")
sleep 1

echo "traffic for ${seconds}s: ${rate} requests/s to the demo backend, ${load} synthetic spans/s"
if [ "$load" != 0 ]; then
    "$bin/plumb-loadgen" --rate "$load" --duration "${seconds}s" --services 5 --endpoints 6 &
    loadgen=$!
fi
"$bin/plumb-demo" traffic --target http://127.0.0.1:8081 --rate "$rate" --duration "${seconds}s"
[ -z "${loadgen:-}" ] || wait "$loadgen"
sleep 14   # the agent exports every 5 s, traces wait 10 s in the trace window, flushes every 2 s

echo
echo "== the demo backend's endpoints (plumb top --since 5m --service shop) =="
"$bin/plumb" top --since 5m --service shop
echo
echo "== where GET /orders/{id} spends its time (plumb endpoint) =="
"$bin/plumb" endpoint shop "GET /orders/{id}" --since 5m
echo
echo "== the slowest GET /recommendations/{id}, across both services (plumb trace) =="
slowest=$("$bin/plumb" --json endpoint shop "GET /recommendations/{id}" --since 5m --exemplars 1 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["slowest"][0]["trace_id"])')
"$bin/plumb" trace "$slowest"
echo
echo "== where the time goes across all services (plumb top --by time) =="
"$bin/plumb" top --since 5m --by time --limit 10
echo
echo
echo "== the probe of the shop (plumb uptime) and the alerts (plumb alerts) =="
"$bin/plumb" uptime --since 1h
"$bin/plumb" alerts --history 1h
echo
echo "more: plumb chatty, plumb regressions --baseline 1d, plumb endpoint <service> <operation>, plumb silence"
echo "query API: http://127.0.0.1:7318/api/v1/top?since=5m   metrics: http://127.0.0.1:7318/metrics"
echo "web pages: http://127.0.0.1:7318/ (services, endpoints, traces, uptime, alerts)"
if [ "${PLUMB_KEEP_RUNNING:-0}" = 1 ]; then
    echo "everything keeps running; stop it with: kill ${pids[*]}"
else
    echo "to keep everything running to browse the pages: PLUMB_KEEP_RUNNING=1 deploy/quickstart.sh"
fi
