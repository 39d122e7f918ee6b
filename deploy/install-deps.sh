#!/usr/bin/env bash
# Installs what building and running Plumb needs on Debian/Ubuntu, only when it is missing:
# protoc (the proto crate's build script) and a ClickHouse server (the collector's local server
# and the tests). Safe to run again.
set -euo pipefail

missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
have_clickhouse=false
for candidate in clickhouse clickhouse-server /usr/bin/clickhouse /usr/sbin/clickhouse-server; do
    if command -v "$candidate" >/dev/null 2>&1; then have_clickhouse=true; fi
done
$have_clickhouse || missing+=(clickhouse-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)

if ((${#missing[@]} > 0)); then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
