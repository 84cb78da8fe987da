#!/usr/bin/env bash
# End-to-end benchmark on the real services: generated CDN traffic through Kafka into the
# release build of the job and MariaDB. Prints throughput, commit latency, state size and
# peak memory; with RECOVERY=1 also the time to recover after kill -9.
#
# Usage: benches/e2e.sh [LINES]        (default 1000000)
# Environment: WORKERS (2), PARTITIONS (4), RATE (event-time lines/s of the generated
#   stream; 2800/s puts ~1 M lines in the live windows: 5 min sliding + 60 s lateness),
#   RECOVERY (0), LIVE_RATE (lines/s produced in real time for the latency run, 2000).
#   Window settings come from config/local.toml; override them as usual, e.g.
#   EDGEFLOW__WINDOW__OUT_OF_ORDERNESS_SECS=1 (the latency floor is that allowance).
# Performance targets live here and in `cargo bench`, never in timed tests.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
LINES=${1:-1000000}
WORKERS=${WORKERS:-2}
PARTITIONS=${PARTITIONS:-4}
RATE=${RATE:-2800}
RECOVERY=${RECOVERY:-0}
LIVE_RATE=${LIVE_RATE:-2000}
BIN=target/release/edgeflow

say() { printf 'bench: %s\n' "$*" >&2; }

scripts/services.sh start >&2
eval "$(scripts/services.sh env)"
say "building the release binary"
cargo build --release --locked --bin edgeflow >&2

RUN_ID=$(date +%s)
TOPIC=bench_$RUN_ID
DB=edgeflow_bench_$RUN_ID
BASE_URL=${EDGEFLOW_MYSQL_URL%/*}
mysql_q() { mariadb --protocol=tcp -h 127.0.0.1 -P 3307 -u edgeflow -pedgeflow -N -B "$@"; }
mysql_q -e "CREATE DATABASE \`$DB\`"
export EDGEFLOW__MYSQL__URL=$BASE_URL/$DB
export EDGEFLOW__KAFKA__TOPIC=$TOPIC
export EDGEFLOW__KAFKA__BROKERS=$EDGEFLOW_KAFKA_BROKERS
# No wall-clock idleness: the generated stream is historical.
export EDGEFLOW__WINDOW__IDLE_TIMEOUT_SECS=86400
$BIN migrate -c config/local.toml >&2

say "producing $LINES lines to $TOPIC ($PARTITIONS partitions, $RATE lines/s of event time)"
t0=$(date +%s.%N)
START_MS=1795000000000
$BIN gen -c config/local.toml --out kafka --partitions "$PARTITIONS" --lines "$LINES" --rate "$RATE" --domains 200 --start-ms "$START_MS" >&2
t1=$(date +%s.%N)
say "produced in $(echo "$t1 - $t0" | bc) s"

LOG=$(mktemp /tmp/edgeflow-bench.XXXXXX.log)
t0=$(date +%s.%N)
$BIN run -c config/local.toml -w "$WORKERS" --exit-at-end 2>"$LOG"
t1=$(date +%s.%N)
secs=$(echo "$t1 - $t0" | bc)
summary=$(grep "job finished" "$LOG" | tail -1)
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$summary"; }
commits=$(field commits)
printf '\n== edgeflow end-to-end (%s workers, %s partitions, %s lines) ==\n' "$WORKERS" "$PARTITIONS" "$LINES"
printf 'wall time           %8.1f s\n' "$secs"
printf 'throughput          %8.0f lines/s\n' "$(echo "$LINES / $secs" | bc -l)"
printf 'commits             %8s\n' "$commits"
printf 'state (live keys)   %8s at peak\n' "$(field live_keys_peak)"
printf 'peak RSS            %8s KiB\n' "$(field peak_rss_kib)"
printf 'rows written        %8s\n' "$(field rows_written)"

# Latency: a live job on a real-time stream (event time = now); every second, how far the
# committed frontier (job_state.committed_upto) trails the wall clock. The floor is the
# out-of-orderness allowance (a record's epoch closes once the watermark passes it).
mysql_q -e "DROP DATABASE \`$DB\`; CREATE DATABASE \`$DB\`"
$BIN migrate -c config/local.toml >&2
export EDGEFLOW__KAFKA__TOPIC=${TOPIC}_live
$BIN gen -c config/local.toml --out kafka --partitions "$PARTITIONS" --lines 0 --rate "$LIVE_RATE" --domains 200 --realtime >/dev/null 2>&1 &
gen_pid=$!
$BIN run -c config/local.toml -w "$WORKERS" 2>>"$LOG" &
pid=$!
sleep 8
lags=()
for _ in $(seq 20); do
  lags+=("$(mysql_q -D "$DB" -e "SELECT UNIX_TIMESTAMP(NOW(3)) - COALESCE(MAX(committed_upto), 0) FROM job_state")")
  sleep 1
done
kill -TERM "$pid" "$gen_pid"; wait "$pid" "$gen_pid" 2>/dev/null || true
export EDGEFLOW__KAFKA__TOPIC=$TOPIC
printf 'latency             %8.2f s median (p90 %.2f s): wall clock minus committed frontier, live at %s lines/s\n' \
  "$(printf '%s\n' "${lags[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" \
  "$(printf '%s\n' "${lags[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.9+0.5)]}')" "$LIVE_RATE"

if [[ $RECOVERY == 1 ]]; then
  # Recovery: a live job caught up on the whole topic is killed with -9; more lines arrive;
  # the restarted job replays the live windows and catches up. Timed from the restart until
  # every partition's committed checkpoint is past the new end.
  mysql_q -e "DROP DATABASE \`$DB\`; CREATE DATABASE \`$DB\`"
  $BIN migrate -c config/local.toml >&2
  wait_committed() { # total offset
    until [[ $(mysql_q -D "$DB" -e "SELECT COALESCE(SUM(resume_offset), 0) FROM checkpoints") -ge $1 ]]; do sleep 0.05; done
  }
  $BIN run -c config/local.toml -w "$WORKERS" 2>>"$LOG" &
  pid=$!
  wait_committed "$LINES"
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
  replay=$(mysql_q -D "$DB" -e "SELECT SUM(resume_offset - COALESCE(replay_from, 0)) FROM checkpoints")
  EXTRA=20000
  $BIN gen -c config/local.toml --out kafka --partitions "$PARTITIONS" --lines "$EXTRA" --rate "$RATE" --domains 200 \
    --seed 7 --start-ms "$((START_MS + LINES * 1000 / ${RATE%.*}))" >&2
  t0=$(date +%s.%N)
  $BIN run -c config/local.toml -w "$WORKERS" 2>>"$LOG" &
  pid=$!
  wait_committed "$((LINES + EXTRA))"
  t1=$(date +%s.%N)
  kill -TERM "$pid"; wait "$pid" || true
  printf 'recovery            %8.2f s from restart to caught up: replayed %s messages of live windows, then %s new ones\n' \
    "$(echo "$t1 - $t0" | bc)" "$replay" "$EXTRA"
fi
say "log: $LOG"
mysql_q -e "DROP DATABASE \`$DB\`"
