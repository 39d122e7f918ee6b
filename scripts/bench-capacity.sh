#!/usr/bin/env bash
# The capacity report at scale: 90 days of history for SERVICES services (default 100) on HOSTS
# hosts (default 20), written straight into the collector's ClickHouse as a collector with the
# default retention holds it: per-minute latency rows for the last 30 days (which the
# materialized view rolls up by hour), hourly rollups for the 60 days before, and hourly host and
# process metric points for all 90 (rolled up likewise), then `plumb report capacity --since 90d --horizon 30d` timed in each
# format. Reports the wall time, the collector's peak resident memory before and after, and the
# split the collector logs: time reading ClickHouse and time in the models.
#
#   scripts/bench-capacity.sh [SERVICES] [HOSTS]
set -euo pipefail
cd "$(dirname "$0")/.."
services="${1:-100}"
hosts="${2:-20}"
. scripts/bench-collector.sh

start_collector
clickhouse=$(grep -o 'url=[^ ]*' "$dir/collector.log" | head -1 | cut -d= -f2 | tr -d '"')
ask() { curl -sS --fail-with-body "$clickhouse/?database=plumb" --data-binary "$1"; }
minutes=$((30 * 1440))
hours=$((90 * 24))
older=$((60 * 24))
seed_start=$(date +%s)
# Requests per minute: a daily swing around a per-service level; latency grows with load.
ask "INSERT INTO latency_minute
     SELECT minute, service, 'GET /items', 'server', r, intDiv(r, 100), r * (20000 + 20 * r),
            [10000, 20000, 50000, 200000], [intDiv(r, 2), intDiv(r * 3, 10), intDiv(r, 10), toUInt64(r - intDiv(r, 2) - intDiv(r * 3, 10) - intDiv(r, 10))]
     FROM (SELECT toDateTime(intDiv(toUInt32(now()), 60) * 60 - (number % $minutes + 1) * 60) AS minute,
                  concat('svc-', toString(intDiv(number, $minutes))) AS service,
                  toUInt64(60 * (20 + intDiv(number, $minutes)) * (1.2 + sin(2 * pi() * toHour(minute) / 24))) AS r
           FROM numbers($services * $minutes))"
ask "INSERT INTO latency_hour
     SELECT hour, service, 'GET /items', 'server', r, intDiv(r, 100), r * (20000 + 20 * intDiv(r, 60)),
            [10000, 20000, 50000, 200000], [intDiv(r, 2), intDiv(r * 3, 10), intDiv(r, 10), toUInt64(r - intDiv(r, 2) - intDiv(r * 3, 10) - intDiv(r, 10))]
     FROM (SELECT toDateTime(intDiv(toUInt32(now()), 3600) * 3600 - 30 * 86400 - (number % $older + 1) * 3600) AS hour,
                  concat('svc-', toString(intDiv(number, $older))) AS service,
                  toUInt64(3600 * (20 + intDiv(number, $older)) * (1.2 + sin(2 * pi() * toHour(hour) / 24))) AS r
           FROM numbers($services * $older))"
# Process metrics per service (CPU counter, memory) and host metrics per host, hourly.
ask "INSERT INTO metrics
     SELECT t, toUInt64(t) * 1000000000, service, name, unit, mtype, temp, mono, [], [],
            ['host.name', 'service.instance.id'], [host, concat(service, '-1')], v, 0, 0, [], []
     FROM (SELECT toDateTime(intDiv(toUInt32(now()), 3600) * 3600 - (h + 1) * 3600 + 3540) AS t,
                  intDiv(number, $hours * 2) AS s, number % $hours AS h,
                  concat('svc-', toString(s)) AS service, concat('host-', toString(s % $hosts)) AS host,
                  if(intDiv(number, $hours) % 2 = 0, 'process.cpu.time', 'process.memory.usage') AS name,
                  if(name = 'process.cpu.time', 's', 'By') AS unit,
                  if(name = 'process.cpu.time', 'sum', 'gauge') AS mtype,
                  if(name = 'process.cpu.time', 'cumulative', 'unspecified') AS temp,
                  if(name = 'process.cpu.time', 1, 0) AS mono,
                  if(name = 'process.cpu.time', toFloat64($hours - h) * 3600 * 0.3, 2e8 + 1e6 * s) AS v
           FROM numbers($services * $hours * 2))"
ask "INSERT INTO metrics
     SELECT t, toUInt64(t) * 1000000000, 'node', name, 'By', 'gauge', 'unspecified', 0, akeys, avalues,
            ['host.name'], [host], v, 0, 0, [], []
     FROM (SELECT toDateTime(intDiv(toUInt32(now()), 3600) * 3600 - (h + 1) * 3600 + 3540) AS t,
                  intDiv(number, $hours * 6) AS k, intDiv(number, $hours) % 6 AS which, number % $hours AS h,
                  concat('host-', toString(k)) AS host,
                  arrayElement(['system.cpu.utilization', 'system.memory.usage', 'system.memory.usage', 'system.memory.limit', 'system.filesystem.usage', 'system.filesystem.usage'], which + 1) AS name,
                  arrayElement([[], ['system.memory.state'], ['system.memory.state'], [], ['system.filesystem.mountpoint', 'system.filesystem.state'], ['system.filesystem.mountpoint', 'system.filesystem.state']], which + 1) AS akeys,
                  arrayElement([[], ['used'], ['free'], [], ['/', 'used'], ['/', 'free']], which + 1) AS avalues,
                  arrayElement([0.3 + 0.2 * sin(2 * pi() * toHour(t) / 24), 4e9, 4e9, 8e9, 1e11 + 1e8 * ($hours - h), 4e11 - 1e8 * ($hours - h)], which + 1) AS v
           FROM numbers($hosts * $hours * 6))"
seed_end=$(date +%s)
# The seed's parts merge in the background for a while: time the reports once that is over.
while [ "$(ask 'SELECT count() FROM system.merges')" != "0" ]; do sleep 1; done
rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
for format in json md html; do
    start_ns=$(date +%s%N)
    "$bin/plumb" --endpoint "http://$query" report capacity --since 90d --horizon 30d \
        --format "$format" --out "$dir/report.$format"
    end_ns=$(date +%s%N)
    line=$(grep '"capacity report"\|capacity report' "$dir/collector.log" | tail -1)
    store_ms=$(echo "$line" | grep -o 'store_ms=[0-9]*' | cut -d= -f2)
    model_ms=$(echo "$line" | grep -o 'model_ms=[0-9]*' | cut -d= -f2)
    wall_ms=$(( (end_ns - start_ns) / 1000000 ))
    echo "$format: wall ${wall_ms} ms (ClickHouse ${store_ms} ms, models and rendering ${model_ms} ms), $(stat -c %s "$dir/report.$format") bytes"
    echo "  reads: $(echo "$line" | grep -o "reads=.*" | cut -c1-300)"
done
series=$(python3 -c "
import json
r = json.load(open('$dir/report.json'))
print(len(r['services']) + sum(len(h['resources']) for h in r['hosts']))")
rss_peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "seeded:                  $services services, $hosts hosts, 90 days, in $((seed_end - seed_start)) s"
echo "series modelled:         $series (model time per series: ${model_ms} ms / $series)"
echo "collector memory:        $(awk -v k="$rss_before" 'BEGIN { printf "%.1f MiB", k / 1024 }') before, peak $(awk -v k="$rss_peak" 'BEGIN { printf "%.1f MiB", k / 1024 }')"
