#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what is missing, starts Kafka and MariaDB on
# loopback, runs the unit, dataflow and end-to-end tests, and stops the services again.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

scripts/setup.sh
scripts/services.sh start
trap 'scripts/services.sh stop >/dev/null 2>&1 || true' EXIT
eval "$(scripts/services.sh env)"

# End-to-end tests start the job binary; two test threads keep the 2-core machine busy
# without starving Kafka and MariaDB.
cargo test --workspace --lib --bins --tests --locked -- --test-threads=2

echo "scripts/test.sh: all tests passed in $(( $(date +%s) - started ))s"
