#!/usr/bin/env bash
# The demo web cluster on loopback: an nginx load balancer in front of three nginx backends that
# serve several virtual hosts and log edgeflow's `cdn` format, and an rsyslogd of its own that
# ships the backends' access logs to Kafka. Plain processes of the current user, no systemd;
# every instance has its own prefix, pid file and logs under the run directory.
#
# Usage: scripts/webcluster.sh COMMAND
#   start                 render the configs, generate the sites' files (once per run dir) and
#                         start the balancer and the backends (idempotent)
#   stop                  stop the shipper and every nginx of the run dir (idempotent)
#   method METHOD         switch the balancing method and reload the balancer
#   backend stop|start N  stop or start backend N (1..3) alone
#   rotate                rotate the backends' access logs (access.log -> access.log.<n>, USR1)
#   ship start|stop       start or stop the shipper (rsyslogd: imfile -> omkafka)
#   status                one line per process; exit 3 unless all are running
#   env                   `export` lines: WEB_URL, WEB_RUN_DIR, WEB_MANIFEST, WEB_BACKEND_LOGS
#
# Environment:
#   WEB_RUN_DIR     run directory (.services/web)
#   WEB_PORT_BASE   the balancer's port; backends use the next three (18080)
#   WEB_METHOD      round_robin | weighted | ip_hash | least_conn (round_robin), see
#                   config/nginx/upstream/
#   WEB_SLOW_BACKEND  a backend (1..3) whose responses are rate-limited to 64 KiB/s (none)
#   SHIP_BROKERS    Kafka bootstrap brokers for `ship start` (comma-separated host:port)
#   SHIP_TOPIC      the topic to produce to (must exist: the brokers do not create topics)
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPTS_DIR/.." && pwd)
CONF_DIR=$REPO_ROOT/config/nginx
RUN=${WEB_RUN_DIR:-$REPO_ROOT/.services/web}
PORT_BASE=${WEB_PORT_BASE:-18080}
METHOD=${WEB_METHOD:-round_robin}
SLOW=${WEB_SLOW_BACKEND:-}
# The load generator connects from 127.0.0.1; the balancer reaches the backends from 127.0.0.2.
TRUSTED_CLIENT=127.0.0.1
BALANCER_ADDR=127.0.0.2

say() { printf '%s\n' "$*"; }
die() { printf 'webcluster.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

NGINX=$(command -v nginx || true)
[[ -n $NGINX ]] || NGINX=/usr/sbin/nginx
RSYSLOGD=$(command -v rsyslogd || true)
[[ -n $RSYSLOGD ]] || RSYSLOGD=/usr/sbin/rsyslogd

[[ $PORT_BASE =~ ^[0-9]+$ ]] && ((PORT_BASE >= 1024 && PORT_BASE + 3 <= 65535)) ||
  die "WEB_PORT_BASE must be a port number from 1024 on, got '$PORT_BASE'"
[[ -z $SLOW || $SLOW =~ ^[123]$ ]] || die "WEB_SLOW_BACKEND must be 1, 2 or 3, got '$SLOW'"

backend_port() { say $((PORT_BASE + $1)); }
instances() { say balancer backend-1 backend-2 backend-3; }

port_open() {
  # shellcheck disable=SC2016 # $0 is expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# pid_of NAME: the pid of the instance's master process, if it is running. The pid file alone
# is not trusted: the process must still be an nginx (or rsyslogd) on this run dir's config.
pid_of() {
  local name=$1 pidfile conf pid
  if [[ $name == shipper ]]; then
    pidfile=$RUN/shipper/rsyslogd.pid conf=$RUN/shipper/rsyslog.conf
  else
    pidfile=$RUN/$name/nginx.pid conf=$RUN/$name/nginx.conf
  fi
  pid=$(cat "$pidfile" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$conf" || return 1
  say "$pid"
}

need() {
  [[ -x $NGINX ]] || die "nginx not found: run scripts/setup.sh (it installs nginx, wrk, rsyslog and rsyslog-kafka)"
}

# render TEMPLATE OUT SED-ARGS...: fill @NAME@ placeholders; any left over is a bug.
render() {
  local template=$1 out=$2
  shift 2
  sed "$@" -e "s|@CONF@|$CONF_DIR|g" -e "s|@TRUSTED_CLIENT@|$TRUSTED_CLIENT|g" \
    -e "s|@BALANCER_ADDR@|$BALANCER_ADDR|g" -e "s|@USER@|$(user_line)|g" "$template" >"$out.tmp"
  if grep -q '@[A-Z0-9_]*@' "$out.tmp"; then
    die "unfilled placeholder in $out: $(grep -o '@[A-Z0-9_]*@' "$out.tmp" | head -n 1)"
  fi
  mv "$out.tmp" "$out"
}

# As root, nginx would run its workers as `nobody`; run them as the current user instead.
user_line() {
  if ((EUID == 0)); then say "user $(id -un) $(id -gn);"; else say "# (not root: workers run as $(id -un))"; fi
}

render_upstream() {
  local method=$1
  [[ -f $CONF_DIR/upstream/$method.conf ]] ||
    die "unknown balancing method '$method': expected one of $(cd "$CONF_DIR/upstream" && ls ./*.conf | sed 's|^\./||; s|\.conf$||' | tr '\n' ' ')"
  render "$CONF_DIR/upstream/$method.conf" "$RUN/balancer/upstream.conf" \
    -e "s|@BACKEND1@|127.0.0.1:$(backend_port 1)|g" \
    -e "s|@BACKEND2@|127.0.0.1:$(backend_port 2)|g" \
    -e "s|@BACKEND3@|127.0.0.1:$(backend_port 3)|g"
  say "$method" >"$RUN/balancer/method"
}

render_configs() {
  local i dir limit
  for name in $(instances); do
    dir=$RUN/$name
    mkdir -p "$dir/logs" "$dir/tmp"
  done
  render_upstream "$METHOD"
  render "$CONF_DIR/balancer.conf.in" "$RUN/balancer/nginx.conf" \
    -e "s|@DIR@|$RUN/balancer|g" -e "s|@LB_PORT@|$PORT_BASE|g"
  for i in 1 2 3; do
    limit="# (not slowed)"
    [[ $SLOW != "$i" ]] || limit="limit_rate 64k;"
    render "$CONF_DIR/backend.conf.in" "$RUN/backend-$i/nginx.conf" \
      -e "s|@DIR@|$RUN/backend-$i|g" -e "s|@INDEX@|$i|g" -e "s|@PORT@|$(backend_port "$i")|g" \
      -e "s|@ROOT@|$RUN/www|g" -e "s|@LIMIT_RATE@|$limit|g"
  done
}

# The sites: static files of varied sizes per virtual host, and a manifest the load generator
# reads (host, path, relative weight), error paths included. Made once per run dir.
SITES="shop.example.com img.example.com video.example.net api.example.org blog.example.com"
generate_sites() {
  local www=$RUN/www host i size manifest
  [[ -f $www/manifest.txt ]] && return 0
  rm -rf "$www.tmp"
  mkdir -p "$www.tmp"
  manifest=$www.tmp/manifest.txt
  file() { # host path size weight
    mkdir -p "$(dirname "$www.tmp/$1$2")"
    head -c "$3" /dev/urandom >"$www.tmp/$1$2"
    say "$1 $2 $4" >>"$manifest"
  }
  for host in $SITES; do
    file "$host" /index.html $((2000 + RANDOM % 6000)) 30
    file "$host" /css/site.css 24000 10
    file "$host" /js/app.js 91000 8
    # Error paths: missing files, forbidden, moved, failing and overloaded API calls.
    say "$host /missing/$host.html 3" >>"$manifest"
    say "$host /private/admin 1" >>"$manifest"
    say "$host /old/page 2" >>"$manifest"
  done
  for i in $(seq 0 19); do
    size=$((4000 * (1 + i * i)))
    file img.example.com "/img/$i.jpg" "$size" $((40 - i))
  done
  for i in 0 1 2 3 4; do
    file video.example.net "/video/seg-$i.mp4" $((900000 + i * 250000)) 6
  done
  for i in 0 1 2 3 4 5; do
    file api.example.org "/api/items-$i.json" $((300 + i * 700)) 25
  done
  say "api.example.org /api/fail 2" >>"$manifest"
  say "api.example.org /api/busy 1" >>"$manifest"
  for i in 0 1 2 3 4 5 6 7; do
    file blog.example.com "/posts/$i/index.html" $((9000 + i * 3000)) 10
  done
  rm -rf "$www"
  mv "$www.tmp" "$www"
}

start_nginx() {
  local name=$1 dir=$RUN/$1 port out
  if pid_of "$name" >/dev/null; then return 0; fi
  if [[ $name == balancer ]]; then port=$PORT_BASE; else port=$(backend_port "${name#backend-}"); fi
  port_open "$port" && die "port 127.0.0.1:$port ($name) is in use by another process; set WEB_PORT_BASE"
  # -e: errors during start-up go to the instance's log, not to /var/log/nginx.
  if ! out=$("$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" 2>&1); then
    say "$out" >&2
    tail -n 20 "$dir/logs/error.log" >&2 2>/dev/null || true
    die "nginx $name failed to start (config $dir/nginx.conf)"
  fi
  local deadline=$((SECONDS + 10))
  until port_open "$port"; do
    ((SECONDS < deadline)) || { tail -n 20 "$dir/logs/error.log" >&2 || true; die "nginx $name did not open 127.0.0.1:$port within 10 s"; }
    sleep 0.05
  done
}

# stop_pid NAME PID SIGNAL: signal, wait up to 10 s, then SIGKILL.
stop_pid() {
  local name=$1 pid=$2 sig=$3 deadline
  kill "-$sig" "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      printf 'webcluster.sh: warning: %s (pid %s) still running 10 s after SIG%s; sending SIGKILL\n' "$name" "$pid" "$sig" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      return 0
    fi
    sleep 0.05
  done
}

stop_nginx() {
  local pid
  pid=$(pid_of "$1") || return 0
  # SIGTERM: fast shutdown (a graceful QUIT would wait for wrk's keep-alive connections).
  stop_pid "nginx $1" "$pid" TERM
}

cmd_start() {
  need
  mkdir -p "$RUN"
  render_configs
  generate_sites
  local name
  for name in backend-1 backend-2 backend-3 balancer; do start_nginx "$name"; done
}

cmd_stop() {
  local name
  ship_stop
  for name in $(instances); do stop_nginx "$name"; done
}

cmd_method() {
  local method=${1:-} pid
  [[ -n $method ]] || die "method: expected round_robin, weighted, ip_hash or least_conn"
  pid=$(pid_of balancer) || die "method: the balancer is not running (webcluster.sh start)"
  render_upstream "$method"
  "$NGINX" -t -q -p "$RUN/balancer" -c "$RUN/balancer/nginx.conf" -e "$RUN/balancer/logs/error.log" ||
    die "method: the balancer's config does not check out"
  kill -HUP "$pid"
}

cmd_backend() {
  local action=${1:-} n=${2:-}
  [[ $n =~ ^[123]$ ]] || die "backend: expected stop|start and a backend number 1..3"
  need
  case $action in
    stop) stop_nginx "backend-$n" ;;
    start) start_nginx "backend-$n" ;;
    *) die "backend: expected stop or start, got '$action'" ;;
  esac
}

# Rotation as logrotate does it: move the file away, then USR1 makes nginx reopen its log.
cmd_rotate() {
  local i dir pid n
  for i in 1 2 3; do
    dir=$RUN/backend-$i/logs
    pid=$(pid_of "backend-$i") || continue
    n=1
    while [[ -e $dir/access.log.$n ]]; do n=$((n + 1)); done
    mv "$dir/access.log" "$dir/access.log.$n"
    kill -USR1 "$pid"
  done
}

ship_start() {
  local brokers=${SHIP_BROKERS:-} topic=${SHIP_TOPIC:-} dir=$RUN/shipper inputs='' b list='' i deadline
  [[ -n $brokers && -n $topic ]] || die "ship start: set SHIP_BROKERS and SHIP_TOPIC"
  [[ -x $RSYSLOGD ]] || die "rsyslogd not found: run scripts/setup.sh (it installs rsyslog and rsyslog-kafka)"
  compgen -G "/usr/lib/*/rsyslog/omkafka.so" >/dev/null ||
    die "rsyslog's omkafka module is missing: run scripts/setup.sh (it installs rsyslog-kafka)"
  if pid_of shipper >/dev/null; then return 0; fi
  mkdir -p "$dir/work"
  for b in ${brokers//,/ }; do list+=${list:+, }\"$b\"; done
  for i in 1 2 3; do
    # freshStartTail=off: a file seen for the first time is read from its start.
    inputs+="input(type=\"imfile\" file=\"$RUN/backend-$i/logs/access.log\" tag=\"backend-$i\" ruleset=\"edgeflow_ship\" addMetadata=\"on\" freshStartTail=\"off\" reopenOnTruncate=\"on\" persistStateInterval=\"1000\")\\n"
  done
  render "$CONF_DIR/rsyslog.conf.in" "$dir/rsyslog.conf" \
    -e "s|@DIR@|$dir|g" -e "s|@BROKERS@|$list|g" -e "s|@TOPIC@|$topic|g" -e "s|@INPUTS@|$inputs|g"
  "$RSYSLOGD" -N1 -f "$dir/rsyslog.conf" >"$dir/check.log" 2>&1 ||
    { cat "$dir/check.log" >&2; die "ship start: rsyslogd rejects $dir/rsyslog.conf"; }
  rm -f "$dir/rsyslogd.pid"
  # -n: no fork (setsid detaches it from our terminal instead), -i: its own pid file.
  setsid "$RSYSLOGD" -n -f "$dir/rsyslog.conf" -i "$dir/rsyslogd.pid" </dev/null >>"$dir/rsyslogd.out" 2>&1 &
  deadline=$((SECONDS + 10))
  until pid_of shipper >/dev/null; do
    ((SECONDS < deadline)) || { tail -n 20 "$dir/rsyslogd.out" >&2 || true; die "rsyslogd did not start (log $dir/rsyslogd.out)"; }
    sleep 0.05
  done
}

ship_stop() {
  local pid
  pid=$(pid_of shipper) || return 0
  # SIGTERM: rsyslogd saves its read positions and its queue, then exits.
  stop_pid rsyslogd "$pid" TERM
}

cmd_status() {
  local name pid rc=0
  for name in $(instances) shipper; do
    if pid=$(pid_of "$name"); then
      say "$name: running (pid $pid)"
    else
      say "$name: stopped"
      rc=3
    fi
  done
  say "method: $(cat "$RUN/balancer/method" 2>/dev/null || say unknown)"
  return "$rc"
}

cmd_env() {
  say "export WEB_URL=http://127.0.0.1:$PORT_BASE"
  say "export WEB_RUN_DIR=$RUN"
  say "export WEB_MANIFEST=$RUN/www/manifest.txt"
  say "export WEB_BACKEND_LOGS=\"$RUN/backend-1/logs $RUN/backend-2/logs $RUN/backend-3/logs\""
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  method) cmd_method "${2:-}" ;;
  backend) cmd_backend "${2:-}" "${3:-}" ;;
  rotate) cmd_rotate ;;
  ship)
    case ${2:-} in
      start) ship_start ;;
      stop) ship_stop ;;
      *) die "ship: expected start or stop" ;;
    esac
    ;;
  status) cmd_status ;;
  env) cmd_env ;;
  -h | --help | help) usage 0 ;;
  *) usage ;;
esac
