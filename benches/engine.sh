#!/usr/bin/env bash
# Where the job's time goes, file source to MySQL, beside naive references: the same
# generated `cdn` file through
#   - naive Rust: benches/reference/naive.rs, one thread, a hash map and a hash set per row
#     (the `naive_reference` bench target, compiled here with rustc and the release profile's
#     flags: `cargo bench` would first build the package's dev-dependencies, ~3 min here);
#   - naive Python: benches/reference/naive.py, re + dict;
#   - edgeflow: the release build, `edgeflow run --source file:... -w $WORKERS` into a fresh
#     MariaDB database per run (or `--sink null` with SINK=null, if the binary has the flag).
# Each round runs every program once, in a rotated order (no program always goes first on a
# warm or cold machine); the table shows medians over the rounds and min-max. Then the
# edgeflow rows are checked for exactness: every run's `domain_minute` (requests, bytes,
# distinct_clients, status classes) must equal the naive Rust output row for row, and the
# Python output must equal the Rust one. Exit status 1 on any mismatch or rejected line.
#
# Usage: benches/engine.sh [LINES]        (default 1000000)
# Environment:
#   RUNS (3)        rounds
#   WORKERS (2)     edgeflow worker threads
#   TICK (1)        EDGEFLOW__WINDOW__TICK_SECS
#   CLIENTS (100000) distinct client addresses the generator draws from
#   SINK (mysql)    mysql, or null (`edgeflow run --sink null`; skipped with a note when the
#                   binary has no such flag)
#   RATE (2800)     event-time lines/s of the generated file (200 domains)
#   PYTHON (python3)
# The file is generated once per parameter set into .bench/ (gitignored) with
# --late-fraction 0 and 2 s of disorder (within out_of_orderness_secs = 10 of
# config/local.toml), so the job accepts every line; the script checks rejects = 0.
# Needs MariaDB (scripts/services.sh start mariadb); Kafka is not used.
# Measured per run: wall time (lines/s = LINES / wall), peak RSS and user+sys CPU from
# /usr/bin/time, for edgeflow also rows written per input line and commits from its
# `job finished` log line, and the MariaDB server's CPU during the run (from /proc; the
# server is shared, so that one is an upper bound). The release binary is copied to
# .bench/bin/ right after the build (CARGO_TARGET_DIR may be shared with other checkouts).
# Outputs and logs of each invocation stay in .bench/runs/<id>/. Numbers are for comparing on
# one machine, never targets in tests.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
LINES=${1:-1000000}
RUNS=${RUNS:-3}
WORKERS=${WORKERS:-2}
TICK=${TICK:-1}
CLIENTS=${CLIENTS:-100000}
SINK=${SINK:-mysql}
RATE=${RATE:-2800}
PYTHON=${PYTHON:-python3}
DOMAINS=200
START_MS=1795000000000
CACHE=$REPO/.bench
TARGET=${CARGO_TARGET_DIR:-$REPO/target}

say() { printf 'engine: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }
[[ $LINES =~ ^[1-9][0-9]*$ ]] || die "LINES must be a positive integer, got '$LINES'"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[[ $SINK == mysql || $SINK == null ]] || die "SINK must be mysql or null, got '$SINK'"

# Conditions first: the numbers mean little without them.
commit=$(git rev-parse --short HEAD)
[[ -z $(git status --porcelain --untracked-files=no) ]] || commit="$commit+uncommitted changes"
printf '== edgeflow engine bench: %s lines, %s rounds ==\n' "$LINES" "$RUNS"
printf 'commit %s; nproc %s; load average at start %s; %s\n' \
  "$commit" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"

if [[ ! -x /usr/bin/time ]]; then
  say "installing GNU time (apt)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time; } >/dev/null 2>&1 \
    || die "/usr/bin/time is missing and apt-get install time failed"
fi

eval "$(scripts/services.sh env)"
BASE_URL=${EDGEFLOW_MYSQL_URL%/*}
# mysql://user:pass@host:port/db -> mariadb client arguments.
url_re='^mysql://([^:@]+):([^@]*)@([^:/]+):([0-9]+)/'
[[ $EDGEFLOW_MYSQL_URL =~ $url_re ]] || die "cannot read EDGEFLOW_MYSQL_URL"
DB_USER=${BASH_REMATCH[1]} DB_PASS=${BASH_REMATCH[2]} DB_HOST=${BASH_REMATCH[3]} DB_PORT=${BASH_REMATCH[4]}
mysql_q() { mariadb --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u "$DB_USER" -p"$DB_PASS" -N -B "$@"; }
if ! mysql_q -e 'SELECT 1' >/dev/null 2>&1; then
  say "MariaDB is not answering: starting it"
  scripts/services.sh start mariadb >&2
fi
# The server's own CPU while edgeflow writes (a local server on DB_PORT; shared with whatever
# else uses it, so an upper bound): user+sys clock ticks from /proc.
MARIADB_PID=$(pgrep -f -- "mariadbd.*--port=$DB_PORT( |$)" | head -1 || true)
server_ticks() { if [[ -n $MARIADB_PID ]]; then awk '{ print $14 + $15 }' "/proc/$MARIADB_PID/stat" 2>/dev/null || echo 0; else echo 0; fi; }
TICKS_PER_SEC=$(getconf CLK_TCK)

mkdir -p "$CACHE/bin"
say "building the release binary (CARGO_TARGET_DIR=$TARGET)"
cargo build --release --locked --bin edgeflow >&2
# The target dir may be shared with other checkouts: keep our own copy of this build.
BIN=$CACHE/bin/edgeflow
cp "$TARGET/release/edgeflow" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
# The naive_reference bench target, compiled with rustc and the release profile's settings:
# `cargo bench` would first build every dev-dependency of the package for a std-only file.
NAIVE=$CACHE/bin/naive_reference
if [[ ! -x $NAIVE || benches/reference/naive.rs -nt $NAIVE ]]; then
  say "compiling benches/reference/naive.rs"
  rustc --edition 2021 -C opt-level=3 -C codegen-units=1 -C lto=fat -C debuginfo=1 \
    benches/reference/naive.rs -o "$NAIVE.tmp" >&2
  mv "$NAIVE.tmp" "$NAIVE"
fi

edgeflow=1
sink_args=()
if [[ $SINK == null ]]; then
  if "$BIN" run --help 2>/dev/null | grep -q -- --sink; then
    sink_args=(--sink null)
  else
    edgeflow=0
    printf 'NOTE: this edgeflow has no `run --sink` flag: SINK=null skipped, edgeflow not run\n'
  fi
fi

# The input: generated once per parameter set and generator version (src/gen's tree).
gen_version=$(git rev-parse --short HEAD:src/gen)
FILE=$CACHE/cdn-$LINES-d$DOMAINS-c$CLIENTS-r$RATE-$gen_version.log
if [[ ! -s $FILE ]]; then
  say "generating $FILE"
  "$BIN" gen -c config/local.toml --out "file:$FILE.tmp" --lines "$LINES" --domains "$DOMAINS" \
    --clients "$CLIENTS" --rate "$RATE" --start-ms "$START_MS" --format cdn \
    --late-fraction 0 --disorder-ms 2000 >&2
  mv "$FILE.tmp" "$FILE"
fi
[[ $(wc -l <"$FILE") -eq $LINES ]] || die "$FILE does not have $LINES lines"
cat "$FILE" >/dev/null # into the page cache before the first timed read
printf 'input %s (%s MB), %s domains, %s clients, %s lines/s of event time\n' \
  "${FILE#"$REPO"/}" "$(( $(stat -c %s "$FILE") / 1000000 ))" "$DOMAINS" "$CLIENTS" "$RATE"

RUN_ID=$(date +%s)
OUT=$CACHE/runs/$RUN_ID
mkdir -p "$OUT"
# The job's settings for every run; only the database changes.
export EDGEFLOW__WINDOW__TICK_SECS=$TICK
export EDGEFLOW__WINDOW__IDLE_TIMEOUT_SECS=86400
DBS=()

# Runs "$@" under /usr/bin/time; appends "program wall_s user_s sys_s rss_kib" to $OUT/times.
timed() { # program log command...
  local program=$1 log=$2 t0 t1 rc=0
  shift 2
  t0=$(date +%s%N)
  /usr/bin/time -f '%U %S %M' -o "$OUT/time.tmp" "$@" 2>"$log" || rc=$?
  t1=$(date +%s%N)
  if [[ $rc != 0 ]]; then
    say "$program failed (exit $rc); log $log:"
    tail -5 "$log" >&2
    exit 2
  fi
  read -r user sys rss <"$OUT/time.tmp"
  wall=$(echo "scale=3; ($t1 - $t0) / 1000000000" | bc)
  echo "$program $wall $user $sys $rss" >>"$OUT/times"
}

run_rust() { # round
  timed rust "$OUT/rust.$1.log" "$NAIVE" "$FILE" "$OUT/rust.tsv"
}
run_python() {
  timed python "$OUT/python.$1.log" "$PYTHON" benches/reference/naive.py "$FILE" "$OUT/python.tsv"
}
run_edgeflow() {
  local db=edgeflow_engine_${RUN_ID}_$1 log=$OUT/edgeflow.$1.log
  mysql_q -e "CREATE DATABASE \`$db\`"
  DBS+=("$db")
  export EDGEFLOW__MYSQL__URL=$BASE_URL/$db
  "$BIN" migrate -c config/local.toml >"$OUT/migrate.$1.log" 2>&1
  local ticks0 ticks1 summary
  ticks0=$(server_ticks)
  timed edgeflow "$log" \
    "$BIN" run --source "file:$FILE" -w "$WORKERS" -c config/local.toml "${sink_args[@]}"
  ticks1=$(server_ticks)
  echo "$(((ticks1 - ticks0) * 1000000 / TICKS_PER_SEC))" >>"$OUT/mariadb.cpu_us"
  summary=$(grep "job finished" "$log" | tail -1) || die "no 'job finished' line in $log"
  field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$summary"; }
  echo "$(field messages) $(field rejected) $(field rows_written) $(field commits) $(field peak_rss_kib) $db" >>"$OUT/edgeflow.summary"
  say "edgeflow $db: messages $(field messages), rejected $(field rejected), rows written $(field rows_written), commits $(field commits), own peak RSS $(field peak_rss_kib) KiB, mariadbd CPU $(tail -1 "$OUT/mariadb.cpu_us") µs"
}

programs=(rust python)
((edgeflow)) && programs+=(edgeflow)
for ((round = 1; round <= RUNS; round++)); do
  # Rotate the order each round.
  n=${#programs[@]}
  for ((i = 0; i < n; i++)); do
    program=${programs[$(((i + round - 1) % n))]}
    "run_$program" "$round"
    last=$(tail -1 "$OUT/times")
    read -r _ wall user sys rss <<<"$last"
    say "round $round/$RUNS $program: $wall s, $(echo "$LINES / $wall" | bc) lines/s, $((rss / 1024)) MiB, $(echo "scale=2; ($user + $sys) * 1000000 / $LINES" | bc) µs CPU/line"
  done
done

# Medians and ranges. The median of an even count is the mean of the middle two.
stats() { # values... -> "median min max"
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%s %s %s\n", m, v[1], v[NR] }'
}
column_of() { # program awk-expression
  awk -v p="$1" -v lines="$LINES" '$1 == p { print '"$2"' }' "$OUT/times"
}
label() {
  case $1 in
    rust) echo "naive Rust (1 thread)" ;;
    python) echo "naive Python (re + dict)" ;;
    edgeflow) echo "edgeflow file→$SINK (-w $WORKERS, tick $TICK s)" ;;
  esac
}
printf '\n| program | lines/s (median) | range | wall s (median) | peak RSS (median) | CPU µs/line (median) | rows written/line | commits | MariaDB CPU µs/line |\n'
printf '|---|---:|---|---:|---:|---:|---:|---:|---:|\n'
for program in "${programs[@]}"; do
  # shellcheck disable=SC2046
  read -r lps lps_min lps_max < <(stats $(column_of "$program" 'lines / $2'))
  read -r wall _ _ < <(stats $(column_of "$program" '$2'))
  read -r rss _ _ < <(stats $(column_of "$program" '$5'))
  read -r cpu _ _ < <(stats $(column_of "$program" '($3 + $4) * 1000000 / lines'))
  rows=– commits=– server=–
  if [[ $program == edgeflow ]]; then
    read -r rows _ _ < <(stats $(awk -v lines="$LINES" '{ print $3 / lines }' "$OUT/edgeflow.summary"))
    read -r commits _ _ < <(stats $(awk '{ print $4 }' "$OUT/edgeflow.summary"))
    rows=$(printf '%.4f' "$rows") commits=$(printf '%.0f' "$commits")
    if [[ -n $MARIADB_PID ]]; then
      read -r server _ _ < <(stats $(awk -v lines="$LINES" '{ print $1 / lines }' "$OUT/mariadb.cpu_us"))
      server=$(printf '%.2f' "$server")
    fi
  fi
  printf '| %s | %.0f | %.0f–%.0f | %.2f | %.0f MiB | %.2f | %s | %s | %s |\n' \
    "$(label "$program")" "$lps" "$lps_min" "$lps_max" "$wall" "$(echo "$rss / 1024" | bc -l)" "$cpu" "$rows" "$commits" "$server"
done
printf 'CPU µs/line: user+sys of the program itself (all its threads); MariaDB CPU: the server process on port %s during the edgeflow runs (shared: includes anything else it served then).\n' "$DB_PORT"
printf 'load average at end %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"

# Exactness.
status=0
rows_expected=$(wc -l <"$OUT/rust.tsv")
if cmp -s "$OUT/rust.tsv" "$OUT/python.tsv"; then
  printf 'exactness: naive Python = naive Rust (%s rows): OK\n' "$rows_expected"
else
  printf 'exactness: naive Python differs from naive Rust:\n'
  diff "$OUT/rust.tsv" "$OUT/python.tsv" | head -10 || true
  status=1
fi
if ((edgeflow)); then
  while read -r messages rejected rows_written commits _ db; do
    rejects_table=$(mysql_q -D "$db" -e "SELECT COUNT(*) FROM rejects")
    if [[ $messages != "$LINES" || $rejected != 0 || $rejects_table != 0 ]]; then
      printf 'exactness: %s: read %s messages of %s, rejected %s (rejects table: %s rows): MISMATCH\n' \
        "$db" "$messages" "$LINES" "$rejected" "$rejects_table"
      status=1
    fi
    if [[ $SINK == null ]]; then
      continue
    fi
    mysql_q -D "$db" -e "SET time_zone = '+00:00';
      SELECT domain, CAST(UNIX_TIMESTAMP(minute_start) AS SIGNED), requests, bytes, distinct_clients,
             status_1xx, status_2xx, status_3xx, status_4xx, status_5xx
      FROM domain_minute ORDER BY domain, minute_start" >"$OUT/$db.tsv"
    if diff <(LC_ALL=C sort "$OUT/rust.tsv") <(LC_ALL=C sort "$OUT/$db.tsv") >"$OUT/$db.diff"; then
      printf 'exactness: %s domain_minute = naive Rust (%s rows; rejects 0): OK\n' "$db" "$rows_expected"
    else
      printf 'exactness: %s domain_minute differs from naive Rust (%s rows there, %s expected); first differences (< naive, > edgeflow):\n' \
        "$db" "$(wc -l <"$OUT/$db.tsv")" "$rows_expected"
      grep '^[<>]' "$OUT/$db.diff" | head -10
      status=1
    fi
  done <"$OUT/edgeflow.summary"
  if ((status == 0)); then
    for db in "${DBS[@]}"; do mysql_q -e "DROP DATABASE \`$db\`"; done
  else
    say "kept the databases ${DBS[*]} for a look"
  fi
fi
say "logs and outputs in ${OUT#"$REPO"/}"
exit "$status"
