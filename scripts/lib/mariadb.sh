# shellcheck shell=bash
# MariaDB from Debian, run as a private server with its own data dir under .services/mariadb/,
# never the system service. Sourced by services.sh after common.sh; uses REPO_ROOT, STATE_DIR.

# Port 3307, not 3306: a system MySQL/MariaDB (or one that apt started) may own 3306, and tests
# must talk to this server only. MYSQL_PORT overrides it.
MYSQL_PORT_WANTED=${MYSQL_PORT:-3307}
MARIADB_READY_TIMEOUT=${MARIADB_READY_TIMEOUT:-60}
MARIADB_DIR=$STATE_DIR/mariadb # kept across start/stop: the databases survive a restart
MARIADB_DATA=$MARIADB_DIR/data
MARIADB_ERR=$MARIADB_DIR/error.log
MARIADB_PIDFILE=$MARIADB_DIR/mariadbd.pid
MARIADB_SOCK=$MARIADB_DIR/mysqld.sock
# A unix socket path must fit in 108 bytes; a deep checkout (CI clones elsewhere) may not.
if ((${#MARIADB_SOCK} > 100)); then
  MARIADB_SOCK=/tmp/edgeflow-mariadb-$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12)/mysqld.sock
fi

# The port of the running server, else the wanted one.
mariadb_port() {
  if [[ -f $MARIADB_DIR/port && -n $(mariadb_pid) ]]; then cat "$MARIADB_DIR/port"; else say "$MYSQL_PORT_WANTED"; fi
}

# find_bin NAME... — first of the NAMEs found in PATH or the sbin dirs (a non-login root shell
# may lack /usr/sbin in PATH, where Debian puts mariadbd).
find_bin() {
  local name dir
  for name in "$@"; do
    command -v "$name" 2>/dev/null && return 0
    for dir in /usr/sbin /usr/bin /sbin; do
      [[ -x $dir/$name ]] && { say "$dir/$name"; return 0; }
    done
  done
  return 1
}

mariadb_server_bin() { find_bin mariadbd mysqld; }
mariadb_client_bin() { find_bin mariadb mysql; }
mariadb_admin_bin() { find_bin mariadb-admin mysqladmin; }

mariadb_installed() { mariadb_server_bin >/dev/null && mariadb_client_bin >/dev/null && mariadb_admin_bin >/dev/null; }

mariadb_pid() { procs_with "--datadir=$MARIADB_DATA" | head -n 1; }

# Root over the unix socket: root has no password (normal auth) and exists only for this socket.
mariadb_root() {
  "$(mariadb_client_bin)" --no-defaults --protocol=SOCKET --socket="$MARIADB_SOCK" -uroot \
    --batch --skip-column-names "$@"
}

mariadb_version() {
  local v
  if v=$(mariadb_root -e 'SELECT VERSION()' 2>/dev/null); then
    say "MariaDB ${v%%-*}"
  elif v=$("$(mariadb_server_bin)" --version 2>/dev/null); then
    v=${v#*Ver }
    say "MariaDB ${v%%-*}"
  else
    say "MariaDB not installed"
  fi
}

# Create the data dir once. The stamp is written last, so a half-done init is redone, not used.
mariadb_init() {
  [[ -f $MARIADB_DIR/.initialised ]] && return 0
  say "mariadb: initialising $MARIADB_DATA"
  rm -rf "$MARIADB_DATA"
  mkdir -p "$MARIADB_DATA"
  # --no-defaults: ignore /etc/mysql (the system server's datadir, socket, port).
  # normal root auth (no unix_socket plugin): works as root here, and root is socket-only.
  run_logged "$MARIADB_DIR/install-db.log" "mariadb-install-db" \
    "$(find_bin mariadb-install-db mysql_install_db)" --no-defaults --user=root \
    --datadir="$MARIADB_DATA" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve
  touch "$MARIADB_DIR/.initialised"
}

# Before anything is launched: is it running already, is its port free?
# Sets MARIADB_NEEDED=1 if mariadb_launch has work to do.
mariadb_preflight() {
  local pid port=$MYSQL_PORT_WANTED
  MARIADB_NEEDED=
  pid=$(mariadb_pid)
  if [[ -n $pid ]]; then
    if [[ $(mariadb_port) != "$port" ]]; then
      die "mariadb is already running on port $(mariadb_port), but MYSQL_PORT=$port was asked for; run '$0 stop' first"
    fi
    say "mariadb: already running (pid $pid, 127.0.0.1:$port)"
    return 0
  fi
  [[ $port =~ ^[0-9]+$ ]] || die "MYSQL_PORT must be a port number, got '$port'"
  if port_open "$port"; then
    die "port 127.0.0.1:$port is already in use by a process not started from $REPO_ROOT; free it or set MYSQL_PORT"
  fi
  MARIADB_NEEDED=1
}

# Launch mariadbd without waiting for it (mariadb_wait does). Sets MARIADB_LAUNCHED=1.
mariadb_launch() {
  local port=$MYSQL_PORT_WANTED
  MARIADB_LAUNCHED=
  [[ -n ${MARIADB_NEEDED:-} ]] || return 0
  mkdir -p "$MARIADB_DIR" "$(dirname "$MARIADB_SOCK")"
  mariadb_init
  rm -f "$MARIADB_SOCK" "$MARIADB_SOCK.lock" "$MARIADB_PIDFILE"
  say "$port" >"$MARIADB_DIR/port"
  MARIADB_LAUNCHED=1
  # utf8mb4 explicitly: with --no-defaults MariaDB 10.11 falls back to latin1 (Debian sets
  # utf8mb4 only in its /etc/mysql config). Small buffer pool: 2 cores, tests, several JVMs.
  # skip-name-resolve: TCP clients are matched as '127.0.0.1', with no DNS lookups.
  spawn "$MARIADB_DIR/launcher.pid" "$MARIADB_DIR/mariadbd.out" "$MARIADB_DIR" \
    "$(mariadb_server_bin)" --no-defaults --user=root \
    --datadir="$MARIADB_DATA" --socket="$MARIADB_SOCK" --port="$port" \
    --bind-address=127.0.0.1 --pid-file="$MARIADB_PIDFILE" --log-error="$MARIADB_ERR" \
    --skip-name-resolve --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --innodb-buffer-pool-size=256M --max-connections=300 --max-allowed-packet=64M
}

# Wait for the server to answer, then (re)apply users and grants.
mariadb_wait() {
  local start=$SECONDS pid why
  [[ -n ${MARIADB_LAUNCHED:-} ]] || return 0
  until "$(mariadb_admin_bin)" --no-defaults --protocol=SOCKET --socket="$MARIADB_SOCK" -uroot \
    --connect-timeout=2 ping >/dev/null 2>&1; do
    pid=$(cat "$MARIADB_DIR/launcher.pid" 2>/dev/null || true)
    why=
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      why="exited during start-up"
    elif [[ -z $pid ]] && ((SECONDS > start + 10)); then
      why="never started (no pid file)"
    elif ((SECONDS >= start + MARIADB_READY_TIMEOUT)); then
      why="did not answer a ping within ${MARIADB_READY_TIMEOUT}s"
    fi
    if [[ -n $why ]]; then
      tail_file "$MARIADB_DIR/mariadbd.out" 10
      tail_file "$MARIADB_ERR" 40
      mariadb_stop >/dev/null 2>&1 || true
      die "mariadb $why (logs above)"
    fi
    sleep 0.2
  done
  mariadb_provision
  port_open "$(mariadb_port)" || die "mariadb answers on its socket but not on 127.0.0.1:$(mariadb_port)"
  say "mariadb: ready at 127.0.0.1:$(mariadb_port) ($(mariadb_version))"
}

# Idempotent: run on every start, so passwords and grants are always what `env` prints.
# Tests create a fresh database per test, named edgeflow_<something>: the wildcard grant on
# `edgeflow\_%` (\_ is a literal underscore) lets the app user CREATE and DROP those databases.
mariadb_provision() {
  local sql
  sql=$(
    cat <<'SQL'
CREATE DATABASE IF NOT EXISTS `edgeflow` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'edgeflow'@'127.0.0.1' IDENTIFIED BY 'edgeflow';
CREATE USER IF NOT EXISTS 'edgeflow'@'localhost' IDENTIFIED BY 'edgeflow';
ALTER USER 'edgeflow'@'127.0.0.1' IDENTIFIED BY 'edgeflow';
ALTER USER 'edgeflow'@'localhost' IDENTIFIED BY 'edgeflow';
GRANT ALL PRIVILEGES ON `edgeflow`.* TO 'edgeflow'@'127.0.0.1', 'edgeflow'@'localhost';
GRANT ALL PRIVILEGES ON `edgeflow\_%`.* TO 'edgeflow'@'127.0.0.1', 'edgeflow'@'localhost';
CREATE USER IF NOT EXISTS 'edgeflow_ro'@'127.0.0.1' IDENTIFIED BY 'edgeflow_ro';
CREATE USER IF NOT EXISTS 'edgeflow_ro'@'localhost' IDENTIFIED BY 'edgeflow_ro';
ALTER USER 'edgeflow_ro'@'127.0.0.1' IDENTIFIED BY 'edgeflow_ro';
ALTER USER 'edgeflow_ro'@'localhost' IDENTIFIED BY 'edgeflow_ro';
GRANT SELECT ON `edgeflow`.* TO 'edgeflow_ro'@'127.0.0.1', 'edgeflow_ro'@'localhost';
GRANT SELECT ON `edgeflow\_%`.* TO 'edgeflow_ro'@'127.0.0.1', 'edgeflow_ro'@'localhost';
FLUSH PRIVILEGES;
SQL
  )
  run_logged "$MARIADB_DIR/provision.log" "creating the edgeflow database and users" \
    mariadb_root -e "$sql"
}

# SIGTERM is mariadbd's clean shutdown; SIGKILL after 60 s (InnoDB recovers on the next start).
mariadb_stop() {
  local pid
  pid=$(mariadb_pid)
  if [[ -n $pid ]]; then
    stop_pids 60 mariadb "$pid"
    say "mariadb: stopped"
  else
    say "mariadb: not running"
  fi
  rm -f "$MARIADB_SOCK" "$MARIADB_SOCK.lock" "$MARIADB_PIDFILE" "$MARIADB_DIR/launcher.pid"
  [[ $MARIADB_SOCK == "$MARIADB_DIR"/* ]] || rmdir "$(dirname "$MARIADB_SOCK")" 2>/dev/null || true
}

mariadb_status() {
  local pid
  pid=$(mariadb_pid)
  if [[ -z $pid ]]; then
    say "mariadb: stopped (configured at 127.0.0.1:$(mariadb_port), $(mariadb_version))"
    return 1
  fi
  if ! port_open "$(mariadb_port)"; then
    say "mariadb: starting pid $pid at 127.0.0.1:$(mariadb_port) ($(mariadb_version))"
    return 1
  fi
  say "mariadb: running pid $pid at 127.0.0.1:$(mariadb_port) ($(mariadb_version))"
}
