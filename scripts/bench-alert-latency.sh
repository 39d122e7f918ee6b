#!/usr/bin/env bash
# Time from a target going down to the firing webhook arriving, over TRIALS trials (default 20),
# against the bound interval × failure_threshold + group_wait + evaluation_interval. One HTTP
# probe (every 2 s, down after 2 failures), group_wait 1 s, evaluation every 1 s: bound 6 s.
# The target and the webhook receiver are one Python process on loopback.
#
#   scripts/bench-alert-latency.sh [TRIALS]
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-20}"
. scripts/bench-collector.sh

python3 -u - "$trials" "$dir" <<'PY' &
import http.server, json, socketserver, sys, threading, time, urllib.request
trials, folder = int(sys.argv[1]), sys.argv[2]
state = {"down": False, "hooks": []}
lock = threading.Condition()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500 if state["down"] else 200)
        self.end_headers()
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with lock:
            state["hooks"].append((time.time(), body["status"]))
            lock.notify_all()
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
server = Server(("127.0.0.1", 0), Handler)
port = server.server_address[1]
threading.Thread(target=server.serve_forever, daemon=True).start()
with open(f"{folder}/alerts.toml", "w") as f:
    f.write(f'''evaluation_interval = "1s"
[[probe]]
name = "target"
kind = "http"
url = "http://127.0.0.1:{port}/health"
interval = "2s"
failure_threshold = 2
success_threshold = 1
[route]
receiver = "hook"
group_wait = "1s"
group_interval = "1s"
[[receiver]]
name = "hook"
webhook = [{{ url = "http://127.0.0.1:{port}/hook" }}]
''')
open(f"{folder}/ready", "w").close()
while not __import__("os").path.exists(f"{folder}/collector-ready"):
    time.sleep(0.1)
def wait_for(status):
    with lock:
        while not state["hooks"] or state["hooks"][-1][1] != status:
            lock.wait(60)
        return state["hooks"][-1][0]
delays = []
time.sleep(3)
for _ in range(trials):
    down = time.time()
    state["down"] = True
    delays.append(wait_for("firing") - down)
    state["down"] = False
    wait_for("resolved")
    time.sleep(1)
delays.sort()
q = lambda p: delays[min(len(delays) - 1, int(p * len(delays)))]
print(f"trials:                  {len(delays)}")
print(f"down -> firing webhook:  min {delays[0]:.2f} s, p50 {q(0.5):.2f} s, p95 {q(0.95):.2f} s, max {delays[-1]:.2f} s (bound 6 s)")
print(f"webhooks received:       {len(state['hooks'])} ({2 * len(delays)} expected: one firing and one resolved per trial)")
PY
runner=$!
until [ -e "$dir/ready" ]; do sleep 0.1; done
start_collector --alerting-config "$dir/alerts.toml"
touch "$dir/collector-ready"
wait "$runner"
