#!/usr/bin/env bash
# The web pages over a day of 1,000 endpoints (50 services of 20), written straight into the
# collector's ClickHouse as the collector would hold them (per-minute histograms, which the
# materialized view rolls up by hour), then each page fetched REPEAT times (default 5) with the
# median time to the last byte and the page size printed. Compare figures within one run: the
# machine is shared.
#
#   scripts/bench-web.sh [REPEAT]
set -euo pipefail
cd "$(dirname "$0")/.."
repeat="${1:-5}"
. scripts/bench-collector.sh

start_collector
clickhouse=$(grep -o 'url=[^ ]*' "$dir/collector.log" | head -1 | cut -d= -f2 | tr -d '"')
ask() { curl -sS --fail-with-body "$clickhouse/?database=plumb" --data-binary "$1"; }
minutes=1440
ask "INSERT INTO latency_minute
     SELECT minute, concat('svc-', toString(intDiv(e, 20))), concat('GET /op-', toString(e % 20)), 'server',
            r, intDiv(r, 50), r * 20000,
            [5000, 10000, 20000, 50000, 200000], [intDiv(r, 4), intDiv(r, 4), intDiv(r, 4), intDiv(r, 8), toUInt64(r - 3 * intDiv(r, 4) - intDiv(r, 8))]
     FROM (SELECT toDateTime(intDiv(toUInt32(now()), 60) * 60 - (number % $minutes) * 60) AS minute,
                  intDiv(number, $minutes) AS e, toUInt64(10 + e % 90) AS r
           FROM numbers(1000 * $minutes))"
while [ "$(ask 'SELECT count() FROM system.merges')" != "0" ]; do sleep 1; done
echo "seeded: $(ask 'SELECT count() FROM latency_minute') minute rows, $(ask 'SELECT uniqExact(service, operation) FROM latency_minute') endpoints"
page() {
    local name="$1" path="$2" times=() size=0
    for _ in $(seq 1 "$repeat"); do
        read -r t s < <(curl -sS -o /dev/null -w '%{time_total} %{size_download}\n' "http://$query$path")
        times+=("$t"); size="$s"
    done
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    printf '%-12s %7.0f ms  %6.1f KB  %s\n' "$name" "$(awk -v t="$median" 'BEGIN { print t * 1000 }')" \
        "$(awk -v s="$size" 'BEGIN { print s / 1024 }')" "$path"
}
page services "/?since=24h"
page endpoints "/endpoints?since=24h"
page endpoint "/endpoint?service=svc-7&operation=GET+%2Fop-3&since=24h"
page services-1h "/?since=1h"
page endpoints-1h "/endpoints?since=1h"
page regressions "/regressions?since=1h"
page uptime "/uptime?since=24h"
page alerts "/alerts"
