#!/usr/bin/env bash
# The local demo on a fresh machine: installs what is missing, starts Kafka and MariaDB,
# creates the schema, runs the job (2 workers) on live generated CDN traffic and shows rows
# arriving in MySQL. Services stay up afterwards (`scripts/services.sh stop` ends them).
#   DEMO_SECONDS  how long traffic flows (default 60)
#   DEMO_RATE     generated lines per second (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${DEMO_SECONDS:-60}
rate=${DEMO_RATE:-2000}

scripts/setup.sh
scripts/services.sh start
eval "$(scripts/services.sh env)"

# The dev profile optimises dependencies (Cargo.toml) and shares its build with the tests,
# so the demo does not pay for a second, release build.
echo "demo: building edgeflow"
cargo build --locked -q
bin=target/debug/edgeflow
export EDGEFLOW__KAFKA__BROKERS="$EDGEFLOW_KAFKA_BROKERS" EDGEFLOW__MYSQL__URL="$EDGEFLOW_MYSQL_URL"

$bin migrate -c config/local.toml
mkdir -p .services/demo
# Live traffic at the wall clock's pace into a 4-partition topic (created if missing).
$bin gen -c config/local.toml --out kafka --partitions 4 --realtime --rate "$rate" --seconds "$seconds" \
  >.services/demo/gen.log 2>&1 &
gen=$!
$bin run -c config/local.toml -w 2 >.services/demo/job.log 2>&1 &
job=$!
trap 'kill $gen $job 2>/dev/null || true' EXIT

mysql_q() {
  mariadb --protocol=tcp -h 127.0.0.1 -P "${MYSQL_PORT:-3307}" -u edgeflow -pedgeflow edgeflow -e "$1"
}
end=$(( $(date +%s) + seconds ))
while [ "$(date +%s)" -lt "$end" ]; do
  sleep 10
  kill -0 $job 2>/dev/null || { echo "demo: the job stopped; its log:"; tail -n 30 .services/demo/job.log; exit 1; }
  echo "--- $(date -u +%H:%M:%S) UTC: busiest domains in the latest complete minutes"
  mysql_q "SELECT minute_start, domain, requests, ROUND(bytes*8/60/1e6, 2) AS mbit_s, status_4xx, status_5xx
           FROM domain_minute ORDER BY minute_start DESC, requests DESC LIMIT 8;
           SELECT COUNT(*) AS rows_in_domain_minute, SUM(requests) AS requests FROM domain_minute;"
done
wait $gen || true
kill -INT $job 2>/dev/null || true
echo "demo: done. Logs in .services/demo/; services still running (scripts/services.sh stop ends them)."
