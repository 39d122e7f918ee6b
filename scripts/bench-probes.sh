#!/usr/bin/env bash
# Alerting at scale: N HTTP probes (default 1000) every 10 s against one local target server,
# for SECONDS (default 60) after a warm-up of one interval. Reports the collector's CPU (its own
# process, from /proc) and peak resident memory, the checks stored, and the schedule drift: how
# far apart each probe's consecutive checks were, against its 10 s interval (p50, p99, max).
#
#   scripts/bench-probes.sh [PROBES] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
probes="${1:-1000}"
seconds="${2:-60}"
. scripts/bench-collector.sh

# The target: a threaded HTTP server that answers 200 with a small JSON body.
python3 - <<'PY' >"$dir/target.port" &
import http.server, socketserver, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status":"UP"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
target=$!
until [ -s "$dir/target.port" ]; do sleep 0.1; done
port=$(cat "$dir/target.port")

{
    echo 'evaluation_interval = "10s"'
    for i in $(seq 1 "$probes"); do
        printf '[[probe]]\nname = "p%d"\nkind = "http"\nurl = "http://127.0.0.1:%s/health/%d"\ninterval = "10s"\nconditions = ["[STATUS] == 200", "[BODY].status == UP"]\n' "$i" "$port" "$i"
    done
    printf '[route]\nreceiver = "nowhere"\n[[receiver]]\nname = "nowhere"\n'
} >"$dir/alerts.toml"

start_collector --alerting-config "$dir/alerts.toml"
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
sleep 10
start_ticks=$(ticks)
sleep "$seconds"
end_ticks=$(ticks)
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
kill "$target" 2>/dev/null || true

clickhouse=$(grep -o 'url=[^ ]*' "$dir/collector.log" | head -1 | cut -d= -f2 | tr -d '"')
ask() { curl -fsS "$clickhouse/?database=plumb" --data-binary "$1"; }
sleep 12   # the engine writes results every evaluation
checks=$(ask "SELECT count() FROM probe_results")
drift=$(ask "SELECT probe, time_ns FROM probe_results ORDER BY probe, time_ns FORMAT TSV" | python3 -c '
import sys
last = {}
gaps = []
for line in sys.stdin:
    probe, t = line.split()
    t = int(t) / 1e9
    if probe in last:
        gaps.append(abs(t - last[probe] - 10.0))
    last[probe] = t
gaps.sort()
if gaps:
    q = lambda p: gaps[min(len(gaps) - 1, int(p * len(gaps)))]
    print(f"{q(0.5) * 1000:.0f} ms p50, {q(0.99) * 1000:.0f} ms p99, {gaps[-1] * 1000:.0f} ms max over {len(gaps)} intervals")
')
cpu=$(awk -v t=$((end_ticks - start_ticks)) -v hz="$hz" -v s="$seconds" 'BEGIN { printf "%.2f s (%.1f%% of one core)", t / hz, 100 * t / hz / s }')
echo "probes:                  $probes every 10 s (${seconds} s measured)"
echo "checks stored:           $checks"
echo "collector CPU:           $cpu"
echo "peak resident memory:    $(awk -v k="$rss_kib" 'BEGIN { printf "%.1f MiB", k / 1024 }')"
echo "schedule drift:          $drift"
