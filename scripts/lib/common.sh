# shellcheck shell=bash
# Helpers shared by scripts/services.sh and its lib/*.sh. Sourced, never run.

say()  { printf '%s\n' "$*"; }
warn() { printf 'services.sh: warning: %s\n' "$*" >&2; }
die()  { printf 'services.sh: error: %s\n' "$*" >&2; exit 1; }

# run_logged LOG WHAT CMD... — run CMD quietly, appending its output to LOG. On failure print
# this run's part of LOG (the last 80 lines of it) and die, so noisy installers stay quiet
# when they work and still explain themselves when they don't.
run_logged() {
  local logf=$1 what=$2 start rc=0
  shift 2
  mkdir -p "$(dirname "$logf")"
  touch "$logf"
  start=$(wc -l <"$logf")
  printf '=== %s $ %s\n' "$(date -u +%FT%TZ)" "$*" >>"$logf"
  "$@" >>"$logf" 2>&1 </dev/null || rc=$?
  if ((rc != 0)); then
    printf 'services.sh: error: %s failed (exit %d). Output (full log: %s):\n' "$what" "$rc" "$logf" >&2
    tail -n +"$((start + 1))" "$logf" | tail -n 80 | sed 's/^/  | /' >&2
    exit 1
  fi
}

# port_open PORT — true if something accepts TCP connections on 127.0.0.1:PORT.
# A closed loopback port refuses at once; the timeout only guards against oddities.
port_open() {
  # shellcheck disable=SC2016 # $0 is expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# procs_with ARG... — pids of processes whose argv contains every ARG as a whole argument.
# Our services are found by their unique state-dir paths in argv, not by pid files alone, so a
# lost or stale pid file can neither hide a running service nor point at a reused pid.
procs_with() {
  local f pid a want found
  local -a argv
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    mapfile -d '' -t argv 2>/dev/null <"$f" || continue
    ((${#argv[@]})) || continue
    for want in "$@"; do
      found=
      for a in "${argv[@]}"; do
        if [[ $a == "$want" ]]; then found=1 && break; fi
      done
      [[ -n $found ]] || continue 2
    done
    say "$pid"
  done
}

# spawn PIDFILE OUTFILE DIR CMD... — start CMD in the background in its own session (so the
# caller's Ctrl-C or exit does not take it down), cwd DIR (so JVM crash files and the like land
# in the state dir, not wherever the caller stood), stdout/stderr appended to OUTFILE.
spawn() {
  local pidfile=$1 out=$2 dir=$3
  shift 3
  # The inner bash writes its own pid and then execs CMD, so the pid file holds CMD's pid.
  # shellcheck disable=SC2016 # expanded by the inner bash
  # 9>&- : do not hand services.sh's lock fd to a daemon, which would hold the lock forever.
  setsid bash -c 'echo $$ >"$0"; cd "$1" || exit 1; shift; exec "$@"' \
    "$pidfile" "$dir" "$@" </dev/null >>"$out" 2>&1 9>&- &
}

# stop_pids GRACE_SECONDS NAME PID... — SIGTERM, wait up to GRACE_SECONDS, then SIGKILL.
stop_pids() {
  local grace=$1 name=$2 pid deadline
  shift 2
  (($#)) || return 0
  kill -TERM "$@" 2>/dev/null || true
  deadline=$((SECONDS + grace))
  while ((SECONDS < deadline)); do
    for pid in "$@"; do
      kill -0 "$pid" 2>/dev/null && continue 2
    done
    return 0
  done
  warn "$name did not exit within ${grace}s after SIGTERM; sending SIGKILL to $*"
  kill -KILL "$@" 2>/dev/null || true
  deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    for pid in "$@"; do
      kill -0 "$pid" 2>/dev/null && { sleep 0.1; continue 2; }
    done
    return 0
  done
  die "$name (pids $*) survived SIGKILL"
}

# tail_file FILE [N] — print the end of a log, indented, for failure reports.
tail_file() {
  if [[ -s $1 ]]; then
    printf '  --- last %d lines of %s ---\n' "${2:-40}" "$1" >&2
    tail -n "${2:-40}" "$1" | cut -c1-400 | sed 's/^/  | /' >&2
  else
    printf '  (%s is empty or missing)\n' "$1" >&2
  fi
}

# apt_install "REQUIRED..." "OPTIONAL..." — install Debian packages quietly (output in
# install.log). A missing OPTIONAL package is only a warning. Daemons are not started: Debian's
# invoke-rc.d (and deb-systemd-invoke) ask /usr/sbin/policy-rc.d first, and its exit status 101
# means "action forbidden"; mariadb-server would otherwise try to start the system server on
# 3306, which we never use.
apt_install() {
  local required=$1 optional=${2:-} log=$STATE_DIR/install.log
  local policy=/usr/sbin/policy-rc.d backup='' rc=0
  ((EUID == 0)) || die "installing ${required} ${optional} needs root (apt-get); run as root or install them yourself"
  if [[ -e $policy ]]; then
    backup=$policy.edgeflow-backup
    mv -f "$policy" "$backup"
  fi
  printf '#!/bin/sh\n# temporary, written by edgeflow scripts/services.sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  (
    export DEBIAN_FRONTEND=noninteractive
    local -a opts=(-y -q --no-install-recommends
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    local pkg
    run_logged "$log" "apt-get update" apt-get update -q
    # shellcheck disable=SC2086 # word splitting of the package lists is intended
    [[ -z $required ]] || run_logged "$log" "apt-get install $required" apt-get install "${opts[@]}" $required
    for pkg in $optional; do
      if ! apt_has_candidate "$pkg"; then
        warn "optional package $pkg is not available from apt; skipping it"
      elif ! apt-get install "${opts[@]}" "$pkg" >>"$log" 2>&1 </dev/null; then
        warn "optional package $pkg failed to install (see $log); skipping it"
      fi
    done
  ) || rc=$?
  rm -f "$policy"
  [[ -z $backup ]] || mv -f "$backup" "$policy"
  ((rc == 0)) || exit "$rc"
}

# apt_has_candidate PKG — true if apt can install PKG (after an update).
apt_has_candidate() {
  local cand
  cand=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
  [[ -n $cand && $cand != "(none)" ]]
}
