#!/usr/bin/env bash
# Plumb side by side with another OTLP/gRPC collector, at the same rates, in one run: the load
# generator (500-span requests, 4 connections, fresh trace and span ids in every request) drives
# each configuration in turn, alternating, REPEATS times. For each run the collector process
# alone is measured from /proc: CPU-seconds over the load and a DRAIN after it, per million
# spans accepted and as a share of one core, and its peak resident memory (VmHWM; a fresh process
# per run). Medians per configuration and rate are printed with their ratio to Plumb's defaults.
#
#   scripts/bench-peer.sh [PEER] [RATES] [SECONDS] [REPEATS]
#     PEER     the peer's binary (default ../shared/peers/rotel); absent: Plumb only
#     RATES    spans per second, comma-separated (default 10000,300000)
#     SECONDS  of load per run (default 20); REPEATS (default 3)
#   PLUMB_OTHER=DIR  adds Plumb's defaults run from DIR/plumb-collector, another build (of other
#                    code, or with another profile), for an A/B of the two in one run; with
#                    PLUMB_OTHER=target/release, the plain build against the PGO one
#   PLUMB_OTHER_ARGS="OPTIONS"  the other build runs with these options instead of the defaults
#                    ("--trace-window 0": an A/B with the breakdown off); its row is then
#                    `plumb-other-options`
#   PLUMB_PGO=0      Plumb's configurations run the plain release build instead of the PGO one
#   LOAD="ARGS"      more load generator options, for another kind of traffic: "--signal
#                    metrics" sends metric points (RATES are then points per second),
#                    "--http" sends to the OTLP/HTTP listeners
#
# Configurations: Plumb as scripts/build-release.sh builds it, with its defaults (journal and
# breakdown on, a real ClickHouse 18.16) and with --trace-window 0, and when PEER is rotel,
# `--exporter blackhole` and its ClickHouse exporter pointed at a sink that answers 200 to
# everything (it cannot write to 18.16).
set -euo pipefail
cd "$(dirname "$0")/.."
peer="${1:-../shared/peers/rotel}"
rates="${2:-10000,300000}"
seconds="${3:-20}"
repeats="${4:-3}"
drain=15
. scripts/bench-collector.sh
results="$dir/results.tsv"
peer_grpc=127.0.0.1:24317 peer_http=127.0.0.1:24318 sink=127.0.0.1:28123
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The sink the peer's ClickHouse exporter writes to: 200 for every request, body read and dropped.
python3 - "$sink" <<'PY' &
import http.server, sys
host, port = sys.argv[1].split(":")
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    do_GET = do_POST
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((host, int(port)), Sink).serve_forever()
PY
sink_pid=$!
trap 'kill "$sink_pid" 2>/dev/null || true; bench_cleanup' EXIT

start_peer() {
    "$peer" start --otlp-grpc-endpoint "$peer_grpc" --otlp-http-endpoint "$peer_http" "$@" \
        >"$dir/peer.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/${peer_grpc%:*}/${peer_grpc#*:}") 2>/dev/null; then return; fi
        sleep 0.1
    done
    echo "the peer did not start:"; cat "$dir/peer.log"; exit 1
}

stop() {
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
}

# One run: start the configuration, load it, let it drain, read /proc, stop it.
run() {
    local name="$1" rate="$2" endpoint
    case "$name" in
        plumb-defaults) start_collector; endpoint="$grpc" ;;
        plumb-trace-window-0) start_collector --trace-window 0; endpoint="$grpc" ;;
        plumb-other-defaults | plumb-other-options)
            # shellcheck disable=SC2086 # PLUMB_OTHER_ARGS is a list of options (none: defaults)
            collector="$PLUMB_OTHER/plumb-collector" start_collector ${PLUMB_OTHER_ARGS:-}
            endpoint="$grpc" ;;
        peer-blackhole) start_peer --exporter blackhole; endpoint="$peer_grpc" ;;
        peer-clickhouse-sink)
            start_peer --exporter clickhouse --clickhouse-exporter-endpoint "http://$sink"
            endpoint="$peer_grpc" ;;
    esac
    if [[ " ${LOAD:-} " == *" --http "* ]]; then
        endpoint="${endpoint/$grpc/$http}"
        endpoint="${endpoint/$peer_grpc/$peer_http}"
    fi
    local before after report rss
    before=$(ticks "$pid")
    # shellcheck disable=SC2086 # LOAD is a list of options
    report=$("$bin/plumb-loadgen" --endpoint "http://$endpoint" --rate "$rate" \
        --duration "${seconds}s" --batch 500 --concurrency 4 --json ${LOAD:-})
    sleep "$drain"
    after=$(ticks "$pid")
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    stop
    python3 - "$name" "$rate" "$report" "$before" "$after" "$hz" "$rss" "$seconds" "$drain" >>"$results" <<'PY'
import json, sys
name, rate, report = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
cpu = (int(sys.argv[5]) - int(sys.argv[4])) / int(sys.argv[6])
items = "points" if "points_accepted" in report else "spans"
accepted = report[f"{items}_accepted"]
wall = float(sys.argv[8]) + float(sys.argv[9])
per_million = 1e6 * cpu / accepted if accepted else float("nan")
print(f"{name}\t{rate}\t{accepted}\t{report[f'{items}_per_second']:.0f}\t{cpu:.2f}\t{per_million:.3f}\t{100 * cpu / wall:.2f}\t{int(sys.argv[7]) / 1024:.1f}")
PY
    tail -1 "$results" | awk -F'\t' -v unit="$unit" '{printf "  %-22s %7s %s/s asked, %7s sent/s: %6s CPU-s per 1M, %5s%% of a core, %6s MiB peak\n", $1, $2, unit, $4, $6, $7, $8}'
}

configs=(plumb-defaults plumb-trace-window-0)
if [ -n "${PLUMB_OTHER:-}" ] && [ -n "${PLUMB_OTHER_ARGS:-}" ]; then
    configs+=(plumb-other-options)
    echo "the other build ($PLUMB_OTHER) runs with: $PLUMB_OTHER_ARGS"
elif [ -n "${PLUMB_OTHER:-}" ]; then
    configs+=(plumb-other-defaults)
fi
if [ -x "$peer" ]; then
    configs+=(peer-blackhole peer-clickhouse-sink)
    echo "peer: $peer ($("$peer" --version 2>/dev/null || echo "version unknown"))"
else
    echo "no peer at $peer: Plumb only"
fi
unit=spans
if [[ " ${LOAD:-} " == *" metrics "* ]]; then unit=points; fi
echo "load: ${LOAD:-spans over gRPC}"
IFS=, read -r -a rate_list <<<"$rates"
for repeat in $(seq 1 "$repeats"); do
    for rate in "${rate_list[@]}"; do
        echo "== repeat $repeat, $rate $unit/s, ${seconds} s + ${drain} s drain"
        for name in "${configs[@]}"; do
            run "$name" "$rate"
        done
    done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
by = {}
for name, rate, spans, sent, cpu, per_million, core, rss in rows:
    by.setdefault((int(rate), name), []).append((float(per_million), float(core), float(rss)))
print()
print(f"{'rate':>8}  {'configuration':<22} {'CPU-s/1M':>9} {'x Plumb':>8} {'% core':>7} {'x Plumb':>8} {'peak MiB':>9} {'x Plumb':>8}  runs")
for rate in sorted({r for r, _ in by}):
    base = by.get((rate, "plumb-defaults"))
    med = lambda runs, i: statistics.median(r[i] for r in runs)
    for (r, name), runs in sorted(by.items()):
        if r != rate:
            continue
        cells = []
        for i in range(3):
            value = med(runs, i)
            ratio = value / med(base, i) if base and med(base, i) else float("nan")
            cells += [value, ratio]
        print(f"{rate:>8}  {name:<22} {cells[0]:>9.3f} {cells[1]:>8.2f} {cells[2]:>7.2f} {cells[3]:>8.2f} {cells[4]:>9.1f} {cells[5]:>8.2f}  {len(runs)}")
PY
