#!/usr/bin/env bash
# Plumb's whole test suite: formatting, lints, unit, property and integration tests.
# The integration tests start their own ClickHouse (or use PLUMB_CLICKHOUSE_URL when set).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all --check
# The fuzz crate is a workspace of its own (built only by scripts/fuzz-campaign.sh).
rustfmt --check --edition 2024 fuzz/src/main.rs
cargo clippy --workspace --all-targets --locked -- -D warnings

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary, the last often empty).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "all test binaries: %d passed, %d failed\n", passed, failed }' "$log"
