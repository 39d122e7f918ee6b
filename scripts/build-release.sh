#!/usr/bin/env bash
# The release binaries as Plumb ships them: `cargo build --release` of the collector, the CLI and
# the load generator (in target/release), then the collector built again with profile-guided
# optimisation (PGO) into target/pgo/release/plumb-collector.
#
# PGO: a collector instrumented to count its branches and calls (target/pgo-instrumented) runs
# with its own local ClickHouse on free loopback ports and takes load-generator traffic in the
# shapes of the benchmarks (500-span requests at 100k spans/s, small requests, gzip), metric
# points over gRPC, spans and points over OTLP/HTTP, then the CLI asks it for the rankings users
# ask for most; on its exit the counts are merged by llvm-profdata
# (from rustup's llvm-tools, added when missing) and the compiler lays out and inlines the
# collector from them. Nothing about what the collector does changes, only how fast its code
# runs: see docs/SPEED-HISTORY.md for the figures, plain against PGO.
#
#   scripts/build-release.sh [PACKAGE...]   more packages for the plain build (plumb-demo, ...)
#   PLUMB_PGO=0   the plain build only; target/pgo/release/plumb-collector is then not made
#
# The instrumented and the optimised builds each have a target folder of their own. The profile
# is made again whenever the instrumented collector was rebuilt (a stale one would no longer
# match the code), and is named by its content, so that the optimised build, whose flags name it,
# is redone exactly when the profile changes. Prints the collector to run on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

scripts/install-deps.sh >&2
packages=(-p plumb-collector -p plumb-cli -p plumb-loadgen)
for package in "$@"; do packages+=(-p "$package"); done
cargo build --release --locked "${packages[@]}" >&2
if [ "${PLUMB_PGO:-1}" = 0 ]; then
    echo "$root/target/release/plumb-collector"
    exit 0
fi

sysroot="$(rustc --print sysroot)"
host="$(rustc -vV | awk '/^host:/ {print $2}')"
profdata="$sysroot/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
    rustup component add llvm-tools >&2
fi

work="$(mktemp -d)"
collector_pid=""
cleanup() {
    if [ -n "$collector_pid" ]; then kill -TERM "$collector_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The training run: the instrumented collector on free ports, in a folder of its own, under the
# benchmarks' shapes of load and a few queries; its counts land in $raw when it exits.
train() {
    local grpc http query
    read -r grpc http query < <(python3 -c 'import socket
sockets = [socket.socket() for _ in range(3)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(f"127.0.0.1:{s.getsockname()[1]}" for s in sockets))')
    "$instrumented" --data-dir "$work" --grpc-addr "$grpc" --http-addr "$http" \
        --query-addr "$query" --flush-interval 2s >"$work/collector.log" 2>&1 &
    collector_pid=$!
    until curl -fsS "http://$query/readyz" >/dev/null 2>&1; do
        if ! kill -0 "$collector_pid" 2>/dev/null; then cat "$work/collector.log" >&2; exit 1; fi
        sleep 0.2
    done
    load() { target/release/plumb-loadgen --endpoint "http://$grpc" "$@" >&2; }
    load_http() { target/release/plumb-loadgen --endpoint "http://$http" --http "$@" >&2; }
    echo "training the collector's profile (about 1 min)" >&2
    load --rate 100000 --batch 500 --concurrency 4 --duration 20s
    load --rate 20000 --batch 50 --concurrency 2 --duration 5s
    load --rate 20000 --batch 500 --concurrency 2 --duration 5s --gzip
    load --signal metrics --rate 20000 --batch 500 --concurrency 2 --duration 5s
    load_http --rate 20000 --batch 500 --concurrency 2 --duration 5s
    load_http --signal metrics --rate 20000 --batch 500 --concurrency 2 --duration 5s
    sleep 3
    ask() { target/release/plumb --endpoint "http://$query" "$@" >/dev/null; }
    ask top
    ask top --json
    ask regressions
    kill -TERM "$collector_pid"
    wait "$collector_pid" || { cat "$work/collector.log" >&2; exit 1; }
    collector_pid=""
}

raw="$root/target/pgo/raw"
instrumented="$root/target/pgo-instrumented/release/plumb-collector"
# CARGO_ENCODED_RUSTFLAGS: one flag, whatever the path holds (RUSTFLAGS splits on spaces).
CARGO_TARGET_DIR="$root/target/pgo-instrumented" \
    CARGO_ENCODED_RUSTFLAGS="-Cprofile-generate=$raw" \
    cargo build --release --locked -p plumb-collector >&2
shopt -s nullglob
profiles=("$root"/target/pgo/collector-*.profdata)
merged="${profiles[0]:-}"
if [ -z "$merged" ] || [ "$instrumented" -nt "$merged" ]; then
    rm -rf "$raw"
    mkdir -p "$raw"
    train
    rm -f "$root"/target/pgo/collector-*.profdata
    "$profdata" merge -o "$root/target/pgo/collector.profdata" "$raw"
    hash="$(sha256sum "$root/target/pgo/collector.profdata" | cut -c1-16)"
    merged="$root/target/pgo/collector-$hash.profdata"
    mv "$root/target/pgo/collector.profdata" "$merged"
fi

CARGO_TARGET_DIR="$root/target/pgo" \
    CARGO_ENCODED_RUSTFLAGS="-Cprofile-use=$merged" \
    cargo build --release --locked -p plumb-collector >&2
echo "$root/target/pgo/release/plumb-collector"
