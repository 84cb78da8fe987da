# shellcheck shell=bash
# Apache Kafka 4.x in KRaft mode, run straight from the Maven Central jars (Kafka is not in
# Debian and only package registries are reachable, so no release tarball). Sourced by
# services.sh after common.sh; uses REPO_ROOT, SCRIPTS_DIR, STATE_DIR.

KAFKA_POM=$SCRIPTS_DIR/kafka/pom.xml
KAFKA_TEMPLATE=$SCRIPTS_DIR/kafka/server.properties.in
KAFKA_LOG4J=$SCRIPTS_DIR/kafka/log4j2.properties
KAFKA_LIB=$STATE_DIR/kafka-lib # collected jars, kept across start/stop
# KAFKA_CLUSTER=NAME runs a second, independent cluster in .services/kafka-NAME (its own nodes,
# ports and data), e.g. the web-cluster demo's 3 brokers beside the 1-node test services.
KAFKA_CLUSTER_NAME=${KAFKA_CLUSTER:-}
if [[ -n $KAFKA_CLUSTER_NAME && ! $KAFKA_CLUSTER_NAME =~ ^[a-z0-9][a-z0-9_-]{0,31}$ ]]; then
  die "KAFKA_CLUSTER must be lower-case letters, digits, '-' or '_' (got '$KAFKA_CLUSTER_NAME')"
fi
KAFKA_DIR=$STATE_DIR/kafka${KAFKA_CLUSTER_NAME:+-$KAFKA_CLUSTER_NAME} # per-start data and logs, removed by stop

# One node (combined broker+controller) by default; KAFKA_NODES=3 gives the replicated cluster.
# Node i listens on BASE+2(i-1) for clients and BASE+2(i-1)+1 for the controller quorum.
KAFKA_NODES_WANTED=${KAFKA_NODES:-1}
KAFKA_PORT_BASE_WANTED=${KAFKA_PORT_BASE:-9092}
KAFKA_READY_TIMEOUT=${KAFKA_READY_TIMEOUT:-60}
# -Xmx512m is plenty once log.cleaner.dedupe.buffer.size is lowered (see server.properties.in).
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}

# The node count and port base of the cluster that is (or was last) started, else the wanted ones.
kafka_nodes() { cat "$KAFKA_DIR/nodes" 2>/dev/null || say "$KAFKA_NODES_WANTED"; }
kafka_port_base() { cat "$KAFKA_DIR/port_base" 2>/dev/null || say "$KAFKA_PORT_BASE_WANTED"; }
kafka_client_port() { say $(($(kafka_port_base) + 2 * ($1 - 1))); }
kafka_controller_port() { say $(($(kafka_port_base) + 2 * ($1 - 1) + 1)); }

kafka_brokers() {
  local i n out=
  n=$(kafka_nodes)
  for ((i = 1; i <= n; i++)); do out+=${out:+,}127.0.0.1:$(kafka_client_port "$i"); done
  say "$out"
}

kafka_version() {
  local jar
  for jar in "$KAFKA_LIB"/kafka_2.13-*.jar; do
    [[ -e $jar ]] || break
    jar=${jar##*/kafka_2.13-}
    say "${jar%.jar}"
    return
  done
  say "not installed"
}

# Pids of node I's broker: a java process running kafka.Kafka on that node's properties file.
kafka_node_pid() { procs_with kafka.Kafka "$KAFKA_DIR/node-$1/server.properties" | head -n 1; }

# All broker pids of this repo's cluster, whatever node count it was started with.
kafka_all_pids() {
  local props
  for props in "$KAFKA_DIR"/node-*/server.properties; do
    [[ -e $props ]] && procs_with kafka.Kafka "$props"
  done
  return 0
}

need_java_tools() {
  local missing=
  command -v java >/dev/null || missing+=" openjdk-17-jre-headless"
  command -v mvn >/dev/null || missing+=" maven"
  [[ -z $missing ]] || apt_install "$missing"
  command -v java >/dev/null || die "java not found after installing it"
  command -v mvn >/dev/null || die "mvn not found after installing it"
}

# Collect the broker classpath once. The stamp holds the pom's hash, so editing the pom (e.g. a
# new Kafka version) re-collects; otherwise Maven is not even started.
kafka_install() {
  local hash tmp
  hash=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
  if [[ -f $KAFKA_LIB/.stamp && $(<"$KAFKA_LIB/.stamp") == "$hash" ]]; then
    return 0
  fi
  need_java_tools
  say "kafka: collecting the Kafka jars from Maven Central (once; log in $STATE_DIR/install.log)"
  tmp=$STATE_DIR/kafka-lib.tmp
  rm -rf "$tmp"
  run_logged "$STATE_DIR/install.log" "collecting Kafka jars with Maven" \
    mvn -B -q -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "Maven ran but no kafka_2.13 jar landed in $tmp"
  say "$hash" >"$tmp/.stamp"
  # Swap in whole, so an interrupted download never leaves a half-filled lib dir behind a stamp.
  rm -rf "$KAFKA_LIB"
  mv "$tmp" "$KAFKA_LIB"
}

# Run a short-lived Kafka tool (StorageTool). C1-only JIT: these JVMs live a second or two.
kafka_tool() {
  java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$KAFKA_LIB/*" "$@"
}

# Write node I's server.properties from the template.
kafka_write_config() {
  local i=$1 n=$2 dir=$KAFKA_DIR/node-$1 quorum voters='' j repl tx_isr
  if ((n == 1)); then
    quorum="controller.quorum.bootstrap.servers=127.0.0.1:$(kafka_controller_port 1)"
  else
    for ((j = 1; j <= n; j++)); do voters+=${voters:+,}$j@127.0.0.1:$(kafka_controller_port "$j"); done
    quorum="controller.quorum.voters=$voters"
  fi
  repl=$((n < 3 ? n : 3))
  tx_isr=$((repl < 2 ? repl : 2))
  sed -e "s|@NODE_ID@|$i|g" \
    -e "s|@QUORUM_CONFIG@|$quorum|g" \
    -e "s|@CLIENT_PORT@|$(kafka_client_port "$i")|g" \
    -e "s|@CONTROLLER_PORT@|$(kafka_controller_port "$i")|g" \
    -e "s|@DATA_DIR@|$dir/data|g" \
    -e "s|@REPLICATION@|$repl|g" \
    -e "s|@TX_MIN_ISR@|$tx_isr|g" \
    "$KAFKA_TEMPLATE" >"$dir/server.properties"
  if grep -q '@[A-Z_]*@' "$dir/server.properties"; then
    die "unfilled placeholder in $dir/server.properties: $(grep -o '@[A-Z_]*@' "$dir/server.properties" | head -n 1)"
  fi
}

# Before anything is launched: is it running already, and are its ports free?
# Sets KAFKA_NEEDED=1 if kafka_launch has work to do.
kafka_preflight() {
  local n base i port pids
  KAFKA_NEEDED=
  pids=$(kafka_all_pids)
  if [[ -n $pids ]]; then
    n=$(kafka_nodes)
    if [[ $(wc -w <<<"$pids") -eq $n ]]; then
      if ((n != KAFKA_NODES_WANTED)); then
        die "kafka is already running with $n node(s), but KAFKA_NODES=$KAFKA_NODES_WANTED was asked for; run '$0 stop' first"
      fi
      say "kafka: already running (pid $(tr '\n' ' ' <<<"$pids" | sed 's/ $//'), $(kafka_brokers))"
      return 0
    fi
    warn "kafka is only partly running ($(wc -w <<<"$pids") of $n nodes); stopping it to start afresh"
    kafka_stop >/dev/null
  fi

  n=$KAFKA_NODES_WANTED
  base=$KAFKA_PORT_BASE_WANTED
  [[ $n =~ ^[1-9]$ ]] || die "KAFKA_NODES must be 1..9, got '$n'"
  if ! [[ $base =~ ^[0-9]+$ ]] || ((base < 1024 || base + 2 * n > 65535)); then
    die "KAFKA_PORT_BASE must be a port number from 1024 on, got '$base'"
  fi
  # Our stopped cluster has removed its data dir, so port math below uses the wanted values.
  rm -rf "$KAFKA_DIR"
  for ((i = 1; i <= n; i++)); do
    for port in "$(kafka_client_port "$i")" "$(kafka_controller_port "$i")"; do
      port_open "$port" &&
        die "port 127.0.0.1:$port (kafka node $i) is already in use by a process not started from $REPO_ROOT; free it or set KAFKA_PORT_BASE"
    done
  done
  KAFKA_NEEDED=1
}

# Launch the brokers without waiting for them (kafka_wait does), so MariaDB starts meanwhile.
# Sets KAFKA_LAUNCHED=1 once it has started something.
kafka_launch() {
  local n=$KAFKA_NODES_WANTED i cluster_id dir fmt_pids=() fmt_args=()
  KAFKA_LAUNCHED=
  [[ -n ${KAFKA_NEEDED:-} ]] || return 0

  # Fresh data dir per start: formatting is mandatory and refuses a formatted dir, and tests
  # want an empty cluster anyway.
  rm -rf "$KAFKA_DIR"
  mkdir -p "$KAFKA_DIR"
  say "$n" >"$KAFKA_DIR/nodes"
  say "$KAFKA_PORT_BASE_WANTED" >"$KAFKA_DIR/port_base"

  cluster_id=$(kafka_tool kafka.tools.StorageTool random-uuid 2>>"$KAFKA_DIR/format.log" | tail -n 1) || true
  if ! [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]]; then
    tail_file "$KAFKA_DIR/format.log"
    die "kafka: StorageTool random-uuid gave no cluster id (got '$cluster_id')"
  fi
  say "$cluster_id" >"$KAFKA_DIR/cluster_id"

  # One node: a dynamic quorum of itself (--standalone). Several: static voters, for which
  # --standalone is rejected. Formats run in parallel (a JVM start each).
  ((n == 1)) && fmt_args=(--standalone)
  for ((i = 1; i <= n; i++)); do
    dir=$KAFKA_DIR/node-$i
    mkdir -p "$dir/data" "$dir/logs"
    kafka_write_config "$i" "$n"
    kafka_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
      "${fmt_args[@]}" >"$dir/format.log" 2>&1 </dev/null &
    fmt_pids+=($!)
  done
  for ((i = 1; i <= n; i++)); do
    if ! wait "${fmt_pids[i - 1]}"; then
      tail_file "$KAFKA_DIR/node-$i/format.log"
      die "kafka: formatting node $i's storage failed"
    fi
  done

  KAFKA_LAUNCHED=1
  for ((i = 1; i <= n; i++)); do
    dir=$KAFKA_DIR/node-$i
    # Flags as in Kafka's own kafka-run-class.sh, minus the 1 GiB heap; the JVM dies on OOM
    # instead of limping, and its crash files stay in the node dir.
    # shellcheck disable=SC2086
    spawn "$dir/kafka.pid" "$dir/kafka.out" "$dir" \
      java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
      -XX:+ExitOnOutOfMemoryError -XX:ErrorFile="$dir/hs_err_%p.log" \
      -Djava.awt.headless=true -Dkafka.logs.dir="$dir/logs" \
      -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
      -cp "$KAFKA_LIB/*" kafka.Kafka "$dir/server.properties"
  done
}

# Wait until every node's client port accepts connections. In 4.x the client listener opens only
# once the broker has registered with the controller and been unfenced, so this is a real
# readiness signal (the controller port opens earlier and is not probed).
kafka_wait() {
  local n i start deadline dir pid why
  [[ -n ${KAFKA_LAUNCHED:-} ]] || return 0
  n=$(kafka_nodes)
  start=$SECONDS
  deadline=$((start + KAFKA_READY_TIMEOUT))
  for ((i = 1; i <= n; i++)); do
    dir=$KAFKA_DIR/node-$i
    until port_open "$(kafka_client_port "$i")"; do
      pid=$(cat "$dir/kafka.pid" 2>/dev/null || true)
      why=
      if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
        why="exited during start-up"
      elif [[ -z $pid ]] && ((SECONDS > start + 10)); then
        why="never started (no pid file)"
      elif ((SECONDS >= deadline)); then
        why="did not open 127.0.0.1:$(kafka_client_port "$i") within ${KAFKA_READY_TIMEOUT}s"
      fi
      if [[ -n $why ]]; then
        tail_file "$dir/kafka.out" 20
        tail_file "$dir/logs/server.log" 40
        # Keep the evidence: stop removes the data dir.
        rm -rf "$KAFKA_DIR.failed"
        cp -r "$KAFKA_DIR" "$KAFKA_DIR.failed" 2>/dev/null || true
        kafka_stop >/dev/null 2>&1 || true
        die "kafka node $i $why (logs above; a copy of its dir is in $KAFKA_DIR.failed)"
      fi
      sleep 0.2
    done
  done
  say "kafka: ready at $(kafka_brokers) ($n node$( ((n == 1)) || echo s), Kafka $(kafka_version))"
}

# SIGTERM (the broker shuts down in a controlled way), SIGKILL after 20 s; then drop the data.
kafka_stop() {
  local pids
  pids=$(kafka_all_pids)
  if [[ -n $pids ]]; then
    # shellcheck disable=SC2086
    stop_pids 20 kafka $pids
    say "kafka: stopped"
  else
    say "kafka: not running"
  fi
  rm -rf "$KAFKA_DIR"
}

# Print one status line; return 0 if every node is running and accepting connections.
kafka_status() {
  local n i pid pids='' addrs='' state=running s
  n=$(kafka_nodes)
  for ((i = 1; i <= n; i++)); do
    pid=$(kafka_node_pid "$i")
    if [[ -z $pid ]]; then
      state=stopped
      continue
    fi
    pids+=${pids:+,}$pid
    addrs+=${addrs:+,}127.0.0.1:$(kafka_client_port "$i")
    port_open "$(kafka_client_port "$i")" || { [[ $state == running ]] && state=starting; }
  done
  s=$( ((n == 1)) || echo s)
  if [[ -z $pids ]]; then
    say "kafka: stopped ($n node$s configured at $(kafka_brokers), Kafka $(kafka_version))"
    return 1
  elif [[ $state == stopped ]]; then
    say "kafka: degraded, only pid $pids at $addrs of $n nodes running (Kafka $(kafka_version))"
    return 1
  fi
  say "kafka: $state pid$s $pids at $addrs ($n node$s, Kafka $(kafka_version))"
  [[ $state == running ]]
}
