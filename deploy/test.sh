#!/usr/bin/env bash
# Plumb's whole test suite: formatting, lints, unit, property and integration tests.
# The integration tests start their own ClickHouse (or use PLUMB_CLICKHOUSE_URL when set).
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
