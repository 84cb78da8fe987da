#!/usr/bin/env bash
# Real services for edgeflow's tests and demo, on 127.0.0.1 only:
#   Kafka 4.x (KRaft, from Maven Central jars)  127.0.0.1:9092  (KAFKA_NODES=3: 9092,9094,9096)
#   MariaDB (Debian package, private server)     127.0.0.1:3307  (MYSQL_PORT overrides)
#
# Usage: scripts/services.sh install|start [SERVICE]|stop [SERVICE]|restart|status|env
#   install  fetch what is missing (Kafka jars via Maven; mariadb-server, mariadb-client and,
#            if Debian has it, kcat via apt) without starting anything. `start` does the same
#            for what it needs, so on a fresh machine `start` alone is enough.
#   start    start both (idempotent: already running is fine). Kafka starts empty every time;
#            MariaDB keeps its data dir across restarts.
#   stop     stop both and delete Kafka's data (idempotent).
#            SERVICE (kafka or mariadb) starts or stops that one alone (outage tests).
#   status   one line per service; exit 0 if both are running, else 3.
#   env      `export` lines for tests and the demo: eval "$(scripts/services.sh env)"
#   topic NAME [PARTITIONS]  create a topic on the running Kafka (default 4 partitions) with
#            replication factor min(nodes, 3) and min.insync.replicas = replication - 1 (at
#            least 1): 3 and 2 on a 3-node cluster. An existing topic with these settings is fine.
#
# Environment: KAFKA_NODES (1), KAFKA_PORT_BASE (9092), MYSQL_PORT (3307),
#   KAFKA_CLUSTER=NAME (unset): a separate Kafka cluster with its own data dir, e.g.
#     KAFKA_CLUSTER=web KAFKA_NODES=3 KAFKA_PORT_BASE=19092 scripts/services.sh start kafka
#   (start/stop/status/env then act on that cluster's Kafka; MariaDB is always the one server),
#   KAFKA_READY_TIMEOUT / MARIADB_READY_TIMEOUT (60 s), KAFKA_HEAP_OPTS (-Xmx512m -Xms512m).
# State, logs and jars live in .services/ at the repo root (gitignored).
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPTS_DIR/.." && pwd)
STATE_DIR=$REPO_ROOT/.services

# shellcheck source=lib/common.sh
source "$SCRIPTS_DIR/lib/common.sh"
# shellcheck source=lib/kafka.sh
source "$SCRIPTS_DIR/lib/kafka.sh"
# shellcheck source=lib/mariadb.sh
source "$SCRIPTS_DIR/lib/mariadb.sh"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

# One start/stop/install at a time per checkout (tests may call start concurrently).
lock() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  flock -w 180 9 || die "another services.sh holds $STATE_DIR/.lock for over 180 s"
}

# What `start` needs: the Kafka jars and the MariaDB binaries.
ensure_installed() {
  local kcat=${1:-}
  kafka_install
  if ! mariadb_installed; then
    say "mariadb: installing mariadb-server and mariadb-client with apt (log in $STATE_DIR/install.log)"
    # kcat rides along when apt runs anyway: a light Kafka CLI (nice to have, not required).
    apt_install "mariadb-server mariadb-client" "kcat"
    mariadb_installed || die "mariadb binaries still missing after apt-get install"
  elif [[ -n $kcat ]] && ! command -v kcat >/dev/null; then
    apt_install "" "kcat"
  fi
}

cmd_install() {
  lock
  local t0=$SECONDS
  ensure_installed kcat
  local kcat="kcat not available"
  if command -v kcat >/dev/null; then kcat="kcat $(kcat -V 2>/dev/null | awk '/^Version/ {print $2; exit}')"; fi
  say "installed in $((SECONDS - t0))s: Kafka $(kafka_version), $(mariadb_version), $kcat"
}

# If start fails half-way, stop what this run launched, so a failed start leaves nothing
# half-up behind (a service that was already running is left alone).
START_DONE=
KAFKA_LAUNCHED=
MARIADB_LAUNCHED=
undo_failed_start() {
  [[ -z $START_DONE && -n $KAFKA_LAUNCHED$MARIADB_LAUNCHED ]] || return 0
  warn "start failed; stopping what this run had started"
  if [[ -n $KAFKA_LAUNCHED ]]; then kafka_stop >/dev/null 2>&1 || true; fi
  if [[ -n $MARIADB_LAUNCHED ]]; then mariadb_stop >/dev/null 2>&1 || true; fi
}

# `start [kafka|mariadb]`: both by default; one alone for outage tests.
cmd_start() {
  local only=${1:-}
  lock
  local t0=$SECONDS
  ensure_installed
  # All checks first (already running? ports free?), so a conflict launches nothing.
  [[ $only == mariadb ]] || kafka_preflight
  [[ $only == kafka ]] || mariadb_preflight
  trap undo_failed_start EXIT
  # Launch both, then wait for both: MariaDB comes up while Kafka's JVMs warm up.
  [[ $only == kafka ]] || mariadb_launch
  [[ $only == mariadb ]] || kafka_launch
  [[ $only == kafka ]] || mariadb_wait
  [[ $only == mariadb ]] || kafka_wait
  START_DONE=1
  if [[ -n $KAFKA_LAUNCHED$MARIADB_LAUNCHED ]]; then
    say "started in $((SECONDS - t0))s; eval \"\$($0 env)\" sets the EDGEFLOW_* variables"
  fi
}

cmd_stop() {
  local only=${1:-}
  lock
  [[ $only == mariadb ]] || kafka_stop
  [[ $only == kafka ]] || mariadb_stop
}

cmd_status() {
  local rc=0
  kafka_status || rc=3
  mariadb_status || rc=3
  return "$rc"
}

cmd_env() {
  local port
  port=$(mariadb_port)
  say "export EDGEFLOW_KAFKA_BROKERS=$(kafka_brokers)"
  say "export EDGEFLOW_MYSQL_URL=mysql://edgeflow:edgeflow@127.0.0.1:$port/edgeflow"
  # The app user may create and drop edgeflow_* databases, which is all the tests need.
  say "export EDGEFLOW_MYSQL_ADMIN_URL=mysql://edgeflow:edgeflow@127.0.0.1:$port/edgeflow"
  say "export EDGEFLOW_MYSQL_RO_URL=mysql://edgeflow_ro:edgeflow_ro@127.0.0.1:$port/edgeflow"
}

cmd_topic() {
  local name=${1:-} partitions=${2:-4} n repl isr
  [[ $name =~ ^[A-Za-z0-9._-]{1,200}$ ]] || die "topic: expected a topic name (letters, digits, . _ -), got '$name'"
  [[ $partitions =~ ^[1-9][0-9]{0,3}$ ]] || die "topic: PARTITIONS must be a number from 1, got '$partitions'"
  kafka_status >/dev/null || die "topic: kafka is not running ($(kafka_status 2>&1 || true))"
  n=$(kafka_nodes)
  repl=$((n < 3 ? n : 3))
  isr=$((repl > 1 ? repl - 1 : 1))
  # A single-file Java program on the broker classpath: Kafka's own admin client, no extra jars.
  java -Xmx128m -XX:TieredStopAtLevel=1 -cp "$KAFKA_LIB/*" "$SCRIPTS_DIR/kafka/CreateTopic.java" \
    "$(kafka_brokers)" "$name" "$partitions" "$repl" "$isr" 2> >(grep -v '^SLF4J' >&2) ||
    die "topic: could not create topic $name on $(kafka_brokers)"
}

case ${1:-} in
  install) cmd_install ;;
  topic) shift && cmd_topic "$@" ;;
  start | stop)
    case ${2:-} in "" | kafka | mariadb) ;; *) die "unknown service '${2}': expected kafka or mariadb" ;; esac
    "cmd_$1" "${2:-}"
    ;;
  restart) cmd_stop && cmd_start ;;
  status) cmd_status ;;
  env) cmd_env ;;
  -h | --help | help) usage 0 ;;
  *) usage ;;
esac
