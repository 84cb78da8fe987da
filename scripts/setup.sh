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

# The web-cluster demo and its tests: nginx (balancer and backends), wrk (traffic), rsyslog with
# omkafka (the shipper). Their system services are not started: Debian's maintainer scripts ask
# /usr/sbin/policy-rc.d first, and exit status 101 means "don't" (the demo runs its own
# instances as plain processes).
missing=()
for pkg in nginx wrk rsyslog rsyslog-kafka; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  policy=/usr/sbin/policy-rc.d
  backup=
  if [ -e "$policy" ]; then backup=$(mktemp); cp -p "$policy" "$backup"; fi
  printf '#!/bin/sh\n# temporary, written by edgeflow scripts/setup.sh\nexit 101\n' >"$policy" && chmod 755 "$policy" \
    || fail "cannot write $policy (installing nginx and rsyslog needs root)"
  rc=0
  ( install_missing ) || rc=$?
  if [ -n "$backup" ]; then mv -f "$backup" "$policy"; else rm -f "$policy"; fi
  [ "$rc" -eq 0 ] || exit "$rc"
fi
for tool in nginx wrk rsyslogd; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || fail "$tool is still missing after apt-get install"
done
compgen -G "/usr/lib/*/rsyslog/omkafka.so" >/dev/null || fail "rsyslog's omkafka module is missing after installing rsyslog-kafka"

if [ ! -f dashboard/node_modules/.package-lock.json ] \
   || [ dashboard/package-lock.json -nt dashboard/node_modules/.package-lock.json ]; then
  echo "setup: npm ci --prefix dashboard"
  npm ci --prefix dashboard --no-audit --no-fund >>"$log" 2>&1 || fail "npm ci --prefix dashboard failed"
fi
