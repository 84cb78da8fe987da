#!/usr/bin/env bash
# The demo, in one command. By default the real web cluster on loopback:
#   wrk (config/nginx/wrk/traffic.lua) -> nginx load balancer -> 3 nginx backends (cdn logs)
#   -> rsyslog (imfile -> omkafka) -> Kafka, 3 brokers (topic: replication 3, min.insync 2)
#   -> edgeflow, 2 timely processes x 2 workers -> MariaDB -> edgeflow serve (the dashboard)
# It prints the dashboard's address, runs traffic in phases (steady, spike, one backend
# stopped, recovered, repeated) until Ctrl-C or DEMO_SECONDS, then stops everything it started.
#
# Environment:
#   DEMO_MODE       web (default) or generator: `edgeflow gen` straight into the 1-node Kafka of
#                   scripts/services.sh and rows printed in the terminal (quick, no web cluster)
#   DEMO_SECONDS    stop after this many seconds (default: run until Ctrl-C; generator: 60)
#   DEMO_METHOD     balancing method: round_robin, weighted, ip_hash, least_conn (round_robin)
#   DEMO_RATE       steady requests per second, about (web: 200; generator: lines/s, 2000)
#   DEMO_PHASES     web phase lengths in seconds, "steady spike outage recovered" (240 180 120 180)
#   DEMO_DASHBOARD_PORT (8080), DEMO_WEB_PORT (18080, backends the next 3),
#   DEMO_KAFKA_PORT_BASE (19092: brokers 19092/19094/19096, controllers +1),
#   DEMO_TIMELY_PORT (2101: the two timely processes use it and the next)
# State and logs: .services/demo/ (the web cluster's in .services/demo/web/).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${DEMO_MODE:-web}

die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

port_open() {
  # shellcheck disable=SC2016 # $0 is expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# DEMO_MODE=generator: generated lines straight into Kafka, rows shown in the terminal.
generator_demo() {
  local seconds=${DEMO_SECONDS:-60} rate=${DEMO_RATE:-2000} bin end
  # gen and job stay global: the EXIT trap uses them after this function has returned.
  scripts/setup.sh
  scripts/services.sh start
  eval "$(scripts/services.sh env)"
  # The dev profile optimises dependencies (Cargo.toml) and shares its build with the tests,
  # so the demo does not pay for a second, release build.
  echo "demo: building edgeflow"
  cargo build --locked -q
  bin=${CARGO_TARGET_DIR:-target}/debug/edgeflow
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
  end=$(($(date +%s) + seconds))
  while [ "$(date +%s)" -lt "$end" ]; do
    sleep 10
    kill -0 $job 2>/dev/null || { echo "demo: the job stopped; its log:"; tail -n 30 .services/demo/job.log; exit 1; }
    echo "--- $(date -u +%H:%M:%S) UTC: busiest domains in the latest complete minutes"
    mysql_q edgeflow "SELECT minute_start, domain, requests, ROUND(bytes*8/60/1e6, 2) AS mbit_s, status_4xx, status_5xx
             FROM domain_minute ORDER BY minute_start DESC, requests DESC LIMIT 8;
             SELECT COUNT(*) AS rows_in_domain_minute, SUM(requests) AS requests FROM domain_minute;"
  done
  wait $gen || true
  kill -INT $job 2>/dev/null || true
  echo "demo: done. Logs in .services/demo/; services still running (scripts/services.sh stop ends them)."
}

mysql_q() {
  mariadb --protocol=tcp -h 127.0.0.1 -P "${MYSQL_PORT:-3307}" -u edgeflow -pedgeflow "$1" -e "$2"
}

# ---------------------------------------------------------------------------------------------
# DEMO_MODE=web: the web cluster.
state=$root/.services/demo
web_run=$state/web
dashboard_port=${DEMO_DASHBOARD_PORT:-8080}
web_port=${DEMO_WEB_PORT:-18080}
kafka_base=${DEMO_KAFKA_PORT_BASE:-19092}
timely_port=${DEMO_TIMELY_PORT:-2101}
method=${DEMO_METHOD:-round_robin}
rate=${DEMO_RATE:-200}
read -r p_steady p_spike p_outage p_recovered <<<"${DEMO_PHASES:-240 180 120 180}"
database=edgeflow_demo
topic=access-logs
pids=()          # edgeflow processes and wrk, stopped on exit
mariadb_started=
kafka_started=
web_started=

web_env() {
  WEB_RUN_DIR=$web_run WEB_PORT_BASE=$web_port WEB_METHOD=$method "$@"
}
kafka_env() {
  KAFKA_CLUSTER=demo KAFKA_NODES=3 KAFKA_PORT_BASE=$kafka_base "$@"
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  # Whatever happens from here on (a closed terminal, a failing command), stop everything.
  set +e
  trap '' PIPE INT
  echo
  echo "demo: stopping what it started"
  # The job first (SIGTERM: it commits what it has read), then traffic, shipper, web, Kafka.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [[ -n ${final_report:-} ]]; then
    echo "demo: requests in the backends' logs:$(share); in MySQL:"
    mysql_q "$database" "SELECT COUNT(*) AS domain_minute_rows, SUM(requests) AS requests FROM domain_minute" || true
  fi
  if [[ -n $web_started ]]; then web_env scripts/webcluster.sh stop || true; fi
  if [[ -n $kafka_started ]]; then kafka_env scripts/services.sh stop kafka >/dev/null || true; fi
  if [[ -n $mariadb_started ]]; then scripts/services.sh stop mariadb >/dev/null || true; fi
  echo "demo: stopped. Logs are in $state/"
  exit "$rc"
}

# A phase of traffic: wrk for SECONDS at about RATE requests/s (10 connections, each pausing
# between requests), in the background so the loop below keeps an eye on the processes.
traffic() {
  local seconds=$1 rate=$2 delay
  delay=$((10 * 1000 / rate))
  ((delay > 0)) || delay=0
  WRK_MANIFEST=$web_run/www/manifest.txt WRK_DELAY_MS=$delay WRK_SEED=$RANDOM \
    wrk -t 2 -c 10 -d "${seconds}s" --timeout 10s -s config/nginx/wrk/traffic.lua "http://127.0.0.1:$web_port" \
    >>"$state/wrk.log" 2>&1 &
  wrk_pid=$!
  pids+=("$wrk_pid")
}

# Watches until the phase's wrk ends (or the demo's end), every 5 s checking that the job,
# the shipper and the dashboard are alive.
watch_phase() {
  local pid
  while kill -0 "$wrk_pid" 2>/dev/null; do
    if ((deadline > 0 && SECONDS >= deadline)); then return 1; fi
    for pid in "${job_pids[@]}" "$serve_pid"; do
      kill -0 "$pid" 2>/dev/null || { tail -n 30 "$state"/job-*.log "$state/serve.log" >&2; die "an edgeflow process ($pid) stopped; logs above"; }
    done
    web_env scripts/webcluster.sh status >/dev/null 2>&1 || [[ $outage == 1 ]] ||
      { web_env scripts/webcluster.sh status >&2 || true; die "a web cluster process stopped"; }
    sleep 2
  done
  return 0
}

share() {
  local i n out=''
  for i in 1 2 3; do
    n=$(cat "$web_run/backend-$i"/logs/access.log* 2>/dev/null | wc -l)
    out+=" backend-$i=$n"
  done
  echo "$out"
}

web_demo() {
  local t0=$SECONDS bin hosts i mysql_url ro_url t_build
  scripts/setup.sh
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$state"
  port_open "$dashboard_port" && die "port 127.0.0.1:$dashboard_port (dashboard) is in use; set DEMO_DASHBOARD_PORT"
  for i in 0 1; do
    port_open $((timely_port + i)) && die "port 127.0.0.1:$((timely_port + i)) (timely) is in use; set DEMO_TIMELY_PORT"
  done

  if ! scripts/services.sh status 2>/dev/null | grep -q '^mariadb: running'; then mariadb_started=1; fi
  scripts/services.sh start mariadb
  kafka_env scripts/services.sh status >/dev/null 2>&1 || kafka_started=1
  kafka_env scripts/services.sh start kafka
  eval "$(kafka_env scripts/services.sh env)"
  kafka_env scripts/services.sh topic "$topic" 4

  echo "demo: building edgeflow"
  local t_build=$SECONDS
  cargo build --locked -q
  t_build=$((SECONDS - t_build))
  # A copy of its own: a rebuild in a shared target dir must not swap the binary mid-run
  # (migrate and run from different builds would disagree on the schema).
  mkdir -p "$state/bin"
  cp "${CARGO_TARGET_DIR:-$root/target}/debug/edgeflow" "$state/bin/edgeflow.tmp"
  mv "$state/bin/edgeflow.tmp" "$state/bin/edgeflow"
  bin=$state/bin/edgeflow

  # A fresh database per run: the Kafka cluster starts empty, so old checkpoints mean nothing.
  mysql_q edgeflow "DROP DATABASE IF EXISTS $database; CREATE DATABASE $database"
  mysql_url=${EDGEFLOW_MYSQL_URL%/*}/$database
  ro_url=${EDGEFLOW_MYSQL_RO_URL%/*}/$database
  export EDGEFLOW__KAFKA__BROKERS=$EDGEFLOW_KAFKA_BROKERS EDGEFLOW__KAFKA__TOPIC=$topic
  export EDGEFLOW__MYSQL__URL=$mysql_url EDGEFLOW__DASHBOARD__MYSQL_URL=$ro_url
  # Live settings: a minute is final 10 s after it ends, and alerts judge against a 5-minute
  # baseline (30 by default), so the spike phase opens an alert within a few minutes.
  export EDGEFLOW__WINDOW__ALLOWED_LATENESS_SECS=10 EDGEFLOW__WINDOW__OUT_OF_ORDERNESS_SECS=2
  export EDGEFLOW__ALERTS__BASELINE_MINUTES=4 EDGEFLOW__ALERTS__MIN_BASELINE_REQUESTS=30
  $bin migrate -c config/local.toml >"$state/migrate.log" 2>&1 || { cat "$state/migrate.log" >&2; die "edgeflow migrate failed"; }

  web_started=1
  # Fresh logs per run (the counts below and the database start from zero).
  web_env scripts/webcluster.sh stop
  rm -rf "$web_run"
  web_env scripts/webcluster.sh start
  SHIP_BROKERS=$EDGEFLOW_KAFKA_BROKERS SHIP_TOPIC=$topic web_env scripts/webcluster.sh ship start

  # edgeflow as a timely cluster: two processes on loopback, two workers each.
  hosts=$state/timely-hosts.txt
  printf '127.0.0.1:%d\n127.0.0.1:%d\n' "$timely_port" $((timely_port + 1)) >"$hosts"
  job_pids=()
  for i in 0 1; do
    "$bin" run -c config/local.toml -n 2 -p "$i" -w 2 -h "$hosts" >"$state/job-$i.log" 2>&1 &
    job_pids+=($!)
    pids+=($!)
  done
  "$bin" serve -c config/local.toml --bind "127.0.0.1:$dashboard_port" >"$state/serve.log" 2>&1 &
  serve_pid=$!
  pids+=("$serve_pid")
  for _ in $(seq 1 100); do port_open "$dashboard_port" && break; sleep 0.2; done
  port_open "$dashboard_port" || { cat "$state/serve.log" >&2; die "the dashboard did not come up"; }

  cat <<EOF

demo: up in $((SECONDS - t0))s (of which building edgeflow ${t_build}s).
  Dashboard   http://127.0.0.1:$dashboard_port/   (pick the 15m range; pages update live)
  Web cluster http://127.0.0.1:$web_port/  balancer ($method) -> backends on ports $((web_port + 1))-$((web_port + 3))
  Kafka       $EDGEFLOW_KAFKA_BROKERS, topic $topic (4 partitions, replication 3, min.insync.replicas 2)
  edgeflow    2 processes x 2 workers (logs $state/job-0.log, job-1.log), database $database

What to look at: Overview's requests and bandwidth follow the phases below; a domain's page
(e.g. /domains/img.example.com) shows its top clients (addresses from X-Forwarded-For, never
the balancer's) and latency; the spike phase opens a traffic-spike alert a few minutes in
(alerts need a ${EDGEFLOW__ALERTS__BASELINE_MINUTES}-minute baseline first). Phases: steady ${p_steady}s (~$rate req/s), spike ${p_spike}s
(x4), backend 3 stopped ${p_outage}s (the balancer routes around it: its share collapses),
recovered ${p_recovered}s; repeated. Ctrl-C stops everything.
EOF

  deadline=0
  [[ -z ${DEMO_SECONDS:-} ]] || deadline=$((SECONDS + DEMO_SECONDS))
  outage=0
  while :; do
    echo "demo: $(date -u +%H:%M:%S) steady (~$rate req/s); requests so far:$(share)"
    traffic "$p_steady" "$rate"
    watch_phase || break
    echo "demo: $(date -u +%H:%M:%S) spike (~$((rate * 4)) req/s); requests so far:$(share)"
    traffic "$p_spike" $((rate * 4))
    watch_phase || break
    echo "demo: $(date -u +%H:%M:%S) backend 3 stopped; requests so far:$(share)"
    outage=1
    web_env scripts/webcluster.sh backend stop 3
    traffic "$p_outage" "$rate"
    watch_phase || break
    web_env scripts/webcluster.sh backend start 3
    outage=0
    echo "demo: $(date -u +%H:%M:%S) backend 3 recovered; requests so far:$(share)"
    traffic "$p_recovered" "$rate"
    watch_phase || break
  done
  echo "demo: DEMO_SECONDS=${DEMO_SECONDS} reached"
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" 2>/dev/null || true
  # Give the shipper a moment to send the last lines before the job is stopped.
  sleep 5
  final_report=1
}

case $mode in
  generator) generator_demo ;;
  web) web_demo ;;
  *) die "DEMO_MODE must be web or generator, got '$mode'" ;;
esac
