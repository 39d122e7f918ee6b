#!/usr/bin/env bash
# Coverage-guided fuzzing of the collector's decoders with AFL++ (`cargo afl`, stable Rust).
#
#   scripts/fuzz-campaign.sh [INPUTS] [TARGET...]
#
# INPUTS: executions per target (default 10000000); TARGETs: default all of
# plumb_collector::fuzz::TARGETS. Each target starts from its seeds, runs in AFL++'s persistent
# mode until INPUTS executions, and its line reports executions, speed, paths kept, edges and
# crashes; any crash or hang fails the script (the inputs are under target/fuzz/<target>/).
# The inputs AFL++ kept, minimised (cargo afl cmin) and cut to the 40 smallest, replace
# fuzz/corpus/<target>/, which the test suite runs on every time.
set -euo pipefail
cd "$(dirname "$0")/.."

inputs="${1:-10000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(otlp_protobuf_spans otlp_json_spans otlp_protobuf_metrics otlp_json_metrics
        paths_and_statements query_parameters alerting_config grpc_framing)
fi

scripts/install-deps.sh
command -v cargo-afl >/dev/null || cargo install cargo-afl --locked
# Builds AFL++ itself once (a minute or two); later runs find it built.
cargo afl config --build >/dev/null 2>&1 || true
(cd fuzz && cargo afl build --release --quiet)
bin="$PWD/fuzz/target/release/plumb-fuzz"

export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
status=0
for target in "${targets[@]}"; do
    work="target/fuzz/$target"
    rm -rf "$work"
    "$bin" seeds "$target" "$work/seeds"
    if [ -d "fuzz/corpus/$target" ]; then cp "fuzz/corpus/$target/"* "$work/seeds/" 2>/dev/null || true; fi
    started=$(date +%s)
    cargo afl fuzz -i "$work/seeds" -o "$work/out" -E "$inputs" -- "$bin" "$target" \
        >"$work/afl.log" 2>&1 || { echo "$target: afl-fuzz failed, see $work/afl.log"; status=1; continue; }
    took=$(( $(date +%s) - started ))
    stats="$work/out/default/fuzzer_stats"
    value() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
    execs=$(value execs_done)
    crashes=$(value saved_crashes)
    hangs=$(value saved_hangs)
    echo "$target: $execs inputs in ${took} s ($(( execs / (took > 0 ? took : 1) ))/s), $(value corpus_count) kept, edges $(value edges_found)/$(value total_edges) ($(value bitmap_cvg)), crashes $crashes, hangs $hangs"
    if [ "$crashes" != "0" ] || [ "$hangs" != "0" ]; then status=1; continue; fi
    rm -rf "$work/min"
    cargo afl cmin -i "$work/out/default/queue" -o "$work/min" -- "$bin" "$target" >/dev/null 2>&1 || true
    if [ -d "$work/min" ]; then
        rm -rf "fuzz/corpus/$target"
        mkdir -p "fuzz/corpus/$target"
        # The 40 smallest (a process substitution, so that head closing early fails nothing).
        mapfile -t kept < <(ls -S -r "$work/min" | head -40)
        for f in "${kept[@]}"; do
            cp "$work/min/$f" "fuzz/corpus/$target/$(sha1sum "$work/min/$f" | cut -c1-16)"
        done
    fi
done
exit $status
