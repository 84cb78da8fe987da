#!/usr/bin/env bash
# Installs what building and testing edgeflow needs on a fresh Debian machine of this kind,
# idempotently and quietly. Services (Kafka, MariaDB) are installed by scripts/services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
log=.services/setup.log
mkdir -p .services

fail() { echo "setup: $*" >&2; [ -s "$log" ] && tail -n 40 "$log" >&2; exit 1; }

command -v cargo >/dev/null || fail "cargo not found: this machine kind ships Rust; install it with rustup"

# Build dependencies of the bundled librdkafka (rdkafka-sys): a C toolchain, make, zlib.
missing=()
for pkg in build-essential zlib1g-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } >>"$log" 2>&1 \
    || fail "apt-get install ${missing[*]} failed"
fi
