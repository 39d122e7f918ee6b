#!/usr/bin/env bash
# Sidecar cost at a steady rate: plumb-loadgen -> plumb-agent (sidecar) -> plumb-collector ->
# its local ClickHouse. Reports the sidecar's CPU (from /proc, its own process only) and peak
# resident memory.
#
#   scripts/bench-sidecar.sh [RATE] [SECONDS] [COMPRESSION]   defaults: 10000 spans/s, 30 s, gzip
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-10000}"
seconds="${2:-30}"
compression="${3:-gzip}"
bin=target/release
scripts/install-deps.sh
cargo build --release --locked -p plumb-collector -p plumb-cli -p plumb-loadgen -p plumb-sidecar -p plumb-demo >/dev/null

dir="$(mktemp -d)"
"$bin/plumb-collector" --data-dir "$dir" --grpc-addr 127.0.0.1:15317 --http-addr 127.0.0.1:15318 \
    --query-addr 127.0.0.1:15319 >"$dir/collector.log" 2>&1 &
collector=$!
"$bin/plumb-agent" --collector-url http://127.0.0.1:15317 --grpc-addr 127.0.0.1:16317 \
    --http-addr 127.0.0.1:16318 --admin-addr 127.0.0.1:16319 --compression "$compression" >"$dir/agent.log" 2>&1 &
agent=$!
trap 'kill -TERM $agent $collector 2>/dev/null; wait $agent $collector 2>/dev/null; rm -rf "$dir"' EXIT
until curl -fsS http://127.0.0.1:15319/readyz >/dev/null 2>&1; do sleep 0.2; done
until curl -fsS http://127.0.0.1:16319/healthz >/dev/null 2>&1; do sleep 0.2; done

ticks() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
before=$(ticks)
"$bin/plumb-loadgen" --endpoint http://127.0.0.1:16317 --rate "$rate" --duration "${seconds}s" --batch 100 --concurrency 1
after=$(ticks)
hz=$(getconf CLK_TCK)
python3 - "$before" "$after" "$hz" "$seconds" "$(awk '/VmHWM/ {print $2}' "/proc/$agent/status")" <<'PY'
import sys
cpu = (int(sys.argv[2]) - int(sys.argv[1])) / int(sys.argv[3])
print(f"sidecar CPU: {cpu:.2f} s over {sys.argv[4]} s = {100 * cpu / float(sys.argv[4]):.1f}% of one core")
print(f"sidecar peak resident memory: {int(sys.argv[5]) / 1024:.1f} MiB")
PY
sleep 2
curl -fsS http://127.0.0.1:16319/metrics | grep -E '^plumb_agent_(received|forwarded|dropped)_total'
