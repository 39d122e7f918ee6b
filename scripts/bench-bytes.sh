#!/usr/bin/env bash
# Bytes on disk per stored span, for two workloads written through the collector into its
# managed ClickHouse: the load generator's traces (fresh ids in every request), and a real SDK
# workload (the demo backend, instrumented with plumb-agent and the OpenTelemetry SDK, driven by
# its own traffic command). Each goes to a database of its own; after OPTIMIZE FINAL the active
# parts of `spans` are read from system.parts (bytes on disk, rows) and the five largest columns
# from system.columns. The same rows are then loaded into current ClickHouse (chDB, from
# scripts/bytes-on-current.py) with its default compression and with the collector's column codecs.
#
#   scripts/bench-bytes.sh [LOADGEN_SPANS_PER_SECOND] [SECONDS] [DEMO_REQUESTS_PER_SECOND] [COMPRESSION]
#     COMPRESSION  the managed server's --clickhouse-compression: lz4 (default) or zstd
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-20000}"
seconds="${2:-30}"
demo_rate="${3:-400}"
compression="${4:-lz4}"
. scripts/bench-collector.sh
cargo build --release --locked -p plumb-demo >/dev/null
shop=127.0.0.1:18081 recs=127.0.0.1:18082

clickhouse_url() {
    grep -o 'started local ClickHouse url="[^"]*"' "$dir/collector.log" | head -1 |
        sed 's/.*url="//; s/"$//'
}
sql() { curl -fsS "$(clickhouse_url)" --data-binary "$1"; }
report() {
    local database=$1 what=$2
    sql "OPTIMIZE TABLE $database.spans FINAL" >/dev/null
    sql "SELECT '$what', sum(rows), sum(bytes_on_disk), round(sum(bytes_on_disk) / sum(rows), 1),
                round(sum(data_uncompressed_bytes) / sum(rows), 1)
         FROM system.parts WHERE database = '$database' AND table = 'spans' AND active
         FORMAT TSV" |
        awk -F'\t' '{ printf "%s: %d spans, %d bytes on disk, %s bytes per span (%s uncompressed)\n", $1, $2, $3, $4, $5 }'
    sql "SELECT name, round(data_compressed_bytes / (SELECT count() FROM $database.spans), 1)
         FROM system.columns WHERE database = '$database' AND table = 'spans'
         ORDER BY data_compressed_bytes DESC LIMIT 5 FORMAT TSV" |
        awk -F'\t' '{ printf "    %-18s %s bytes per span\n", $1, $2 }'
    # The same rows on current ClickHouse (chDB), without and with the column codecs.
    sql "SHOW CREATE TABLE $database.spans FORMAT TSVRaw" | sed "s/$database\.spans/spans/" >"$dir/create.sql"
    sql "SELECT * FROM $database.spans FORMAT Native" >"$dir/spans.native"
    python3 scripts/bytes-on-current.py "$dir/create.sql" "$dir/spans.native" collector/src/store/codecs.sql
}
stop_collector() {
    kill -TERM "$pid"
    wait "$pid" || true
}

start_collector --database bytes_loadgen --clickhouse-compression "$compression"
"$bin/plumb-loadgen" --endpoint "http://$grpc" --rate "$rate" --duration "${seconds}s" >/dev/null
stop_collector
start_collector --database bytes_sdk --clickhouse-compression "$compression"
"$bin/plumb-demo" serve --service recs --addr "$recs" --otlp-endpoint "http://$grpc" >"$dir/recs.log" 2>&1 &
recs_pid=$!
"$bin/plumb-demo" serve --service shop --addr "$shop" --recs-url "http://$recs" \
    --otlp-endpoint "http://$grpc" >"$dir/shop.log" 2>&1 &
shop_pid=$!
trap 'kill "$recs_pid" "$shop_pid" 2>/dev/null || true; bench_cleanup' EXIT
until curl -fsS "http://$shop/health" >/dev/null 2>&1; do sleep 0.2; done
"$bin/plumb-demo" traffic --target "http://$shop" --rate "$demo_rate" --duration "${seconds}s" >/dev/null
kill -TERM "$shop_pid" "$recs_pid" 2>/dev/null || { echo "the demo backend stopped early:"; cat "$dir/shop.log" "$dir/recs.log"; exit 1; }
wait "$shop_pid" "$recs_pid" || true
stop_collector
# Its managed ClickHouse stopped with it (after the last rows were written): start them again to read.
start_collector --database bytes_sdk --clickhouse-compression "$compression"
report bytes_loadgen "load generator"
report bytes_sdk "SDK workload (demo backend)"
