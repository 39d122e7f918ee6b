# Sourced by the whole-process benchmarks: installs what is missing, builds the release binaries
# as Plumb ships them (scripts/build-release.sh: the collector with profile-guided optimisation,
# or the plain build with PLUMB_PGO=0) and gives `start_collector [OPTIONS...]`, which starts
# `$collector` (with its local ClickHouse) on fixed loopback ports in a temporary folder (under
# `$COLLECTOR_WRAP` when set, such as a profiler) and waits until it is ready. On exit the
# collector, a background `sampler` and a frozen ClickHouse `server` (if the script set them)
# are stopped and the folder removed.
bin=target/release
collector="$(scripts/build-release.sh | tail -1)"

dir="$(mktemp -d)"
grpc=127.0.0.1:14317 http=127.0.0.1:14318 query=127.0.0.1:17318

start_collector() {
    # Each run starts with an empty journal: nothing of the run before is replayed or reused.
    rm -rf "$dir/journal"
    # COLLECTOR_WRAP runs the collector under another program (a profiler), split into words.
    # shellcheck disable=SC2086
    ${COLLECTOR_WRAP:-} "$collector" --data-dir "$dir" --grpc-addr "$grpc" --http-addr "$http" \
        --query-addr "$query" --flush-interval 2s "$@" >"$dir/collector.log" 2>&1 &
    pid=$!
    until curl -fsS "http://$query/readyz" >/dev/null 2>&1; do sleep 0.2; done
}

bench_cleanup() {
    kill "${sampler:-}" 2>/dev/null || true
    if [ -n "${server:-}" ]; then kill -CONT "$server" 2>/dev/null || true; fi
    if [ -n "${pid:-}" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap bench_cleanup EXIT
