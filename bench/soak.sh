#!/bin/bash
# Memory soak: runs Tusk under wrk load for a while in classic pooled,
# worker pooled and worker direct mode and prints the resident memory of
# the workers and the master before and after. Flat numbers mean no leak.
#   bench/soak.sh            (SOAK_SECONDS=60 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
TUSK_BIN=${TUSK_BIN:-build/tusk}
SECS=${SOAK_SECONDS:-60}
PORT=${SOAK_PORT:-18976}
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
workers_rss() { local t=0; for k in $(ps -o pid= --ppid "$1"); do t=$((t + $(rss "$k"))); done; echo "$t"; }
for args in "" "--worker bench/app/worker.php" "--mode direct --worker bench/app/worker.php"; do
  # shellcheck disable=SC2086
  "$TUSK_BIN" serve bench/app $args --listen "127.0.0.1:$PORT" --workers 2 2>/dev/null &
  pid=$!
  trap 'kill $pid 2>/dev/null' EXIT
  sleep 1
  wrk -t2 -c32 -d3s "http://127.0.0.1:$PORT/json.php" >/dev/null   # warm up
  w0=$(workers_rss "$pid"); m0=$(rss "$pid")
  n=$(wrk -t2 -c32 -d"${SECS}s" "http://127.0.0.1:$PORT/json.php" | awk '/requests in/{print $1}')
  w1=$(workers_rss "$pid"); m1=$(rss "$pid")
  echo "tusk ${args:-classic pooled}: $n requests; workers RSS ${w0} -> ${w1} kB; master RSS ${m0} -> ${m1} kB"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
