#!/usr/bin/env bash
# Installs what building and testing edgeflow needs on a fresh Debian machine of this kind,
# idempotently and quietly. Services (Kafka, MariaDB) are installed by scripts/services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
log=.services/setup.log
mkdir -p .services

fail() { echo "setup: $*" >&2; [ -s "$log" ] && tail -n 40 "$log" >&2; exit 1; }

command -v cargo >/dev/null || fail "cargo not found: this machine kind ships Rust; install it with rustup"

# Installs the packages listed in `missing`, if any, with apt (output in the log).
install_missing() {
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "setup: installing ${missing[*]}"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } >>"$log" 2>&1 \
    || fail "apt-get install ${missing[*]} failed"
}

# Build dependencies of the bundled librdkafka (rdkafka-sys): a C toolchain, make, zlib.
missing=()
for pkg in build-essential zlib1g-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
install_missing

# Dashboard: its front-end packages come from npm (dashboard/package-lock.json), and its
# browser test drives Debian's Chromium through chromedriver (browsers cannot be downloaded).
missing=()
command -v npm >/dev/null || missing+=(nodejs npm)
for pkg in chromium chromium-driver fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
install_missing
if [ ! -f dashboard/node_modules/.package-lock.json ] \
   || [ dashboard/package-lock.json -nt dashboard/node_modules/.package-lock.json ]; then
  echo "setup: npm ci --prefix dashboard"
  npm ci --prefix dashboard --no-audit --no-fund >>"$log" 2>&1 || fail "npm ci --prefix dashboard failed"
fi
