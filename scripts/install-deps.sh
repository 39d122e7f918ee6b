#!/usr/bin/env bash
# Installs what building, running and testing Plumb needs on Debian/Ubuntu, only when it is
# missing: protoc (the proto crate's build script), a ClickHouse server (the collector's local
# server and the tests), Chromium (the tests open the HTML reports in it, headless) and chDB
# (current ClickHouse for the compatibility test). Safe to run again.
set -euo pipefail

missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
have_clickhouse=false
for candidate in clickhouse clickhouse-server /usr/bin/clickhouse /usr/sbin/clickhouse-server; do
    if command -v "$candidate" >/dev/null 2>&1; then have_clickhouse=true; fi
done
$have_clickhouse || missing+=(clickhouse-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)

if ((${#missing[@]} > 0)); then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Current ClickHouse (26.x), embedded in Python by chDB: the tests run Plumb's schema, row
# encoding and SQL on it as well as on the server above.
if ! python3 -c 'import chdb' >/dev/null 2>&1; then
    echo "installing: chdb-core (current ClickHouse for the compatibility test)" >&2
    pip_install() { python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@" chdb-core; }
    # Debian's own Python refuses system-wide installs unless told (PEP 668).
    pip_install || pip_install --break-system-packages
    python3 -c 'import chdb' || { echo "chdb-core could not be installed" >&2; exit 1; }
fi
