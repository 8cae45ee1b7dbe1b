#!/usr/bin/env bash
# WebSocket scale benchmark (issue 5): `tusk run` holding tens of thousands of
# idle WebSocket connections (memory per connection, broadcast latency to all
# of them), and message echo throughput vs Workerman. See bench/README.md.
#
#   bench/ws.sh                                   # ~3 min
#   WS_CONNS=10000 DURATION=3 bench/ws.sh         # quick
#   WORKERMAN_DIR=/path/to/workerman bench/ws.sh  # + Workerman
#
# The load comes from bench/wsload.c (built here with cc against libuv into
# a private temp dir). Nothing outside that temp dir is configured; system
# limits are printed, never changed: only this script's own open-files limit
# is raised (ulimit -n), which its children inherit.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")

# ---------------------------------------------------------------- settings
WS_CONNS=${WS_CONNS:-50000}           # idle connections of the scale run
NOFILE_WANT=${NOFILE_WANT:-200000}    # ulimit -n to ask for
ROUNDS=${ROUNDS:-20}                  # broadcast rounds
BCAST_SIZE=${BCAST_SIZE:-64}          # broadcast payload bytes
BCAST_GAP_MS=${BCAST_GAP_MS:-200}     # pause between rounds
SCALE_ECHO_CONNS=${SCALE_ECHO_CONNS:-256}  # echo on top of the idle connections (0 = skip)
ECHO_CONNS=${ECHO_CONNS:-"32 256"}    # connection counts of the echo comparison
ECHO_SIZE=${ECHO_SIZE:-64}
DURATION=${DURATION:-10}              # measured seconds per echo run
ECHO_REPEAT=${ECHO_REPEAT:-3}         # echo runs per server and connection count (median reported)
WARMUP=${WARMUP:-2}                   # unmeasured seconds first
SMALL_BCAST_CONNS=${SMALL_BCAST_CONNS:-900}  # broadcast vs Workerman, one PHP process each
SETTLE=${SETTLE:-2}                   # seconds of quiet before memory is read
AGAIN=${AGAIN:-1}                     # 1: open the N connections a second time (leak check)
START_TIMEOUT=${START_TIMEOUT:-20}

TUSK_BIN=${TUSK_BIN:-$REPO_DIR/build/tusk}
TUSK_WORKERS=${TUSK_WORKERS:-2}
TUSK_ARGS=${TUSK_ARGS:-}
WORKERMAN_DIR=${WORKERMAN_DIR:-}
WORKERMAN_PROCS=${WORKERMAN_PROCS:-2}
PHP_CLI_BIN=${PHP_CLI_BIN:-/usr/bin/php8.2}

TUSK_WS_PORT=${TUSK_WS_PORT:-18090}        # tusk, TUSK_WORKERS workers
TUSK_WSD_PORT=${TUSK_WSD_PORT:-18094}      # tusk --mode direct, TUSK_WORKERS workers (echo)
WORKERMAN_WS_PORT=${WORKERMAN_WS_PORT:-18091}   # workerman, WORKERMAN_PROCS processes
TUSK_WS1_PORT=${TUSK_WS1_PORT:-18092}      # tusk, 1 worker (broadcast comparison)
WORKERMAN_WS1_PORT=${WORKERMAN_WS1_PORT:-18093} # workerman, 1 process

RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}

# ---------------------------------------------------------------- helpers
log() { printf '==> %s\n' "$*" >&2; }
note() { printf '\n*** NOTE: %s\n\n' "$*" >&2; }
die() { printf 'ws.sh: error: %s\n' "$*" >&2; exit 1; }

TMP=""
RUN_DIR=""
STARTED=()   # session leaders of the servers started here
WSL_PID=""   # the running wsload, if any

alive() { [[ -e /proc/$1 ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# Servers run as session (and process group) leaders: SIGTERM to the leader,
# then after 5 s SIGKILL to its whole group.
stop_server() {
  local root=$1 i
  alive "$root" || { wait "$root" 2>/dev/null || true; return 0; }
  kill -TERM "$root" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do alive "$root" || break; sleep 0.1; done
  if alive "$root"; then
    log "pid $root did not stop within 5 s after SIGTERM; killing its process group"
    kill -KILL -- "-$root" 2>/dev/null || true
  fi
  wait "$root" 2>/dev/null || true
  # Workers left behind by a crashed master are in the same group.
  kill -KILL -- "-$root" 2>/dev/null || true
}

cleanup() {
  local rc=$? r
  trap - EXIT INT TERM
  set +e
  if [[ -n $WSL_PID ]]; then kill -KILL "$WSL_PID" 2>/dev/null; wait "$WSL_PID" 2>/dev/null; fi
  for r in "${STARTED[@]}"; do stop_server "$r"; done
  if [[ -n $TMP && -d $TMP ]]; then
    [[ -n $RUN_DIR && -d $RUN_DIR ]] && cp "$TMP"/*.log "$RUN_DIR"/ 2>/dev/null
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

BG_PID=""
start_bg() {
  local logf=$1; shift
  setsid "$@" >"$logf" 2>&1 </dev/null &
  BG_PID=$!
  STARTED+=("$BG_PID")
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The server's processes: the leader and its children (workers).
server_pids() { echo "$1"; pgrep -P "$1" || true; }
cpu_pids() { server_pids "$1" | paste -sd, -; }

# Sum of utime+stime ticks of the given pids.
ticks() {
  local p line s=0
  local -a a
  for p in "$@"; do
    { read -r line <"/proc/$p/stat"; } 2>/dev/null || continue
    read -r -a a <<<"${line##*) }"
    s=$((s + a[11] + a[12]))
  done
  echo "$s"
}

# Waits until the processes used under 3 ticks (30 ms) of CPU in a second,
# at most 60 s: the workers may still be running onConnect for the last
# connections when the handshakes are done.
wait_quiet() {
  local t0 t1 i
  for ((i = 0; i < 60; i++)); do
    t0=$(ticks "$@"); sleep 1; t1=$(ticks "$@")
    ((t1 - t0 < 3)) && return 0
  done
  log "processes $* still busy after 60 s"
}

# "Rss Pss Private Anonymous" in kB from /proc/PID/smaps_rollup.
mem_of() {
  awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Private_(Clean|Dirty):/{v+=$2} /^Anonymous:/{a=$2}
       END { printf "%d %d %d %d\n", r, p, v, a }' "/proc/$1/smaps_rollup" 2>/dev/null || echo "0 0 0 0"
}

# Kernel memory: TCP buffer pages (sockstat) and slab (system wide), kB.
kernel_mem() {
  local pages slab
  pages=$(awk '/^TCP:/{for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat)
  slab=$(awk '/^Slab:/{print $2}' /proc/meminfo)
  echo "$((pages * $(getconf PAGESIZE) / 1024)) $slab"
}

# mem_snapshot LABEL MASTER WORKER...: one line per process into mem.tsv,
# plus the kernel's numbers.
mem_snapshot() {
  local label=$1 master=$2 p; shift 2
  printf '%s\tmaster\t%s\t%s\n' "$label" "$master" "$(mem_of "$master" | tr ' ' '\t')" >>"$RUN_DIR/mem.tsv"
  for p in "$@"; do
    printf '%s\tworker\t%s\t%s\n' "$label" "$p" "$(mem_of "$p" | tr ' ' '\t')" >>"$RUN_DIR/mem.tsv"
  done
  printf '%s\tkernel\t-\t%s\t0\t0\n' "$label" "$(kernel_mem | awk '{print $1 "\t" $2}')" >>"$RUN_DIR/mem.tsv"
}

# mem_get LABEL ROLE COLUMN: kB summed over the processes of that role
# (COLUMN 4 = Rss, 5 = Pss, 6 = Private, 7 = Anonymous; kernel: 4 = TCP, 5 = slab).
mem_get() {
  awk -F'\t' -v l="$1" -v r="$2" -v c="$3" '$1 == l && $2 == r { s += $c } END { print s + 0 }' "$RUN_DIR/mem.tsv"
}

# kv FILE TAG KEY: the value of KEY on the wsload line that starts with TAG.
kv() {
  awk -v t="$2" -v k="$3" '$1 == t { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == k) v = a[2] } }
       END { print (v == "" ? "-" : v) }' "$1" 2>/dev/null
}

# Waits for "paused PHASE" from the background wsload.
wait_pause() {
  local out=$1 phase=$2 deadline=$((SECONDS + 600))
  until grep -q "^paused $phase\$" "$out" 2>/dev/null; do
    if ! alive "$WSL_PID"; then
      wait "$WSL_PID" 2>/dev/null || true
      WSL_PID=""
      tail -n 20 "${out%.out}.err" >&2 || true
      die "wsload exited before the '$phase' phase (output above)"
    fi
    ((SECONDS < deadline)) || die "wsload did not reach the '$phase' phase within 600 s"
    sleep 0.2
  done
}

wsload_go() { kill -USR1 "$WSL_PID"; }

wsload_wait() {
  local rc=0
  wait "$WSL_PID" || rc=$?
  WSL_PID=""
  return "$rc"
}

# Waits until a WebSocket handshake succeeds on the port.
wait_ws() {
  local name=$1 port=$2 root=$3 logs=$4 deadline=$((SECONDS + START_TIMEOUT))
  until "$WSLOAD" -p "$port" -n 1 >/dev/null 2>&1; do
    if ! alive "$root" || ((SECONDS >= deadline)); then
      for f in $logs; do [[ -s $f ]] && { printf -- '---- %s\n' "$f" >&2; tail -n 20 "$f" >&2; }; done
      die "$name did not accept a WebSocket handshake on 127.0.0.1:$port within ${START_TIMEOUT}s"
    fi
    sleep 0.2
  done
}

# Tusk's workers, from `tusk run ... status` ("  worker N pid P ready, ...").
tusk_status() { "$TUSK_BIN" run "$REPO_DIR/bench/app/ws_app.php" --pid-file "$1" status 2>/dev/null || true; }
tusk_workers() { tusk_status "$1" | awk '$1 == "worker" && $5 == "ready," { print $4 }'; }
wait_tusk_ready() {
  local pidf=$1 want=$2 i
  for ((i = 0; i < 100; i++)); do
    [[ $(tusk_workers "$pidf" | wc -l) -ge $want ]] && return 0
    sleep 0.2
  done
  die "tusk's $want workers were not ready within 20 s"
}

start_tusk() { # name port workers [mode]
  local name=$1 port=$2 workers=$3 mode=${4:-pooled}
  port_busy "$port" && die "port $port is in use (set TUSK_WS_PORT / TUSK_WSD_PORT / TUSK_WS1_PORT)"
  # shellcheck disable=SC2086
  start_bg "$TMP/$name.log" env WS_PORT="$port" "$TUSK_BIN" run "$REPO_DIR/bench/app/ws_app.php" \
    --workers "$workers" --mode "$mode" --pid-file "$TMP/$name.pid" $TUSK_ARGS
  wait_ws "$name" "$port" "$BG_PID" "$TMP/$name.log"
  wait_tusk_ready "$TMP/$name.pid" "$workers"
  log "$name: tusk run bench/app/ws_app.php --workers $workers --mode $mode $TUSK_ARGS on 127.0.0.1:$port (pid $BG_PID)"
}

start_workerman() { # name port procs
  local name=$1 port=$2 procs=$3
  port_busy "$port" && die "port $port is in use (set WORKERMAN_WS_PORT / WORKERMAN_WS1_PORT)"
  mkdir -p "$TMP/$name"
  start_bg "$TMP/$name.log" env WORKERMAN_DIR="$WORKERMAN_DIR" WORKERMAN_LISTEN="127.0.0.1:$port" \
    WORKERMAN_PROCS="$procs" WORKERMAN_RUNDIR="$TMP/$name" \
    "$PHP_CLI_BIN" -d opcache.enable_cli=1 "$BENCH_DIR/workerman/ws.php" start
  wait_ws "$name" "$port" "$BG_PID" "$TMP/$name.log $TMP/$name/workerman-ws.log"
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(pgrep -P "$BG_PID" | wc -l) -ge $procs ]] && break
    sleep 0.1
  done
  log "$name: Workerman $(workerman_version) websocket, $procs process(es), on 127.0.0.1:$port (pid $BG_PID)"
}

workerman_version() {
  grep -ho "VERSION = '[^']*'" "$WORKERMAN_DIR/src/Worker.php" "$WORKERMAN_DIR/Worker.php" \
    "$WORKERMAN_DIR/vendor/workerman/workerman/src/Worker.php" 2>/dev/null | head -n 1 | cut -d"'" -f2
}

div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (b + 0 == 0 || a == "-" || b == "-") print "-"; else printf f, a / b }'; }

# ---------------------------------------------------------------- checks
for tool in cc pkg-config setsid pgrep awk; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
pkg-config --exists libuv || die "libuv development files not found (apt-get install libuv1-dev)"
[[ -x $TUSK_BIN ]] || die "tusk binary not found at $TUSK_BIN (cmake -S . -B build && cmake --build build)"
if [[ -n $WORKERMAN_DIR ]]; then
  [[ -d $WORKERMAN_DIR ]] || die "WORKERMAN_DIR=$WORKERMAN_DIR is not a directory"
  [[ -x $PHP_CLI_BIN ]] || die "PHP_CLI_BIN=$PHP_CLI_BIN not found (needed for Workerman)"
fi

TMP=$(mktemp -d /tmp/tusk-wsbench.XXXXXX)
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
RUN_DIR=$RESULTS_DIR/ws-$RUN_ID
mkdir -p "$RUN_DIR"
INFO=$RUN_DIR/info.txt

WSLOAD=$TMP/wsload
# shellcheck disable=SC2046
cc -O2 -Wall -o "$WSLOAD" "$BENCH_DIR/wsload.c" $(pkg-config --cflags --libs libuv) ||
  die "could not build bench/wsload.c"

# ---------------------------------------------------------------- limits
# Each connection costs one descriptor in the Tusk master and one in wsload.
NOFILE_SOFT0=$(ulimit -Sn) NOFILE_HARD0=$(ulimit -Hn)
NOFILE_NOTE=""
if ! ulimit -n "$NOFILE_WANT" 2>/dev/null; then
  ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
  NOFILE_NOTE="could not raise the open-files limit to $NOFILE_WANT: the hard limit is $(ulimit -Hn) and raising it needs CAP_SYS_RESOURCE (root outside a restricted container: 'ulimit -Hn $NOFILE_WANT', systemd LimitNOFILE=, /etc/security/limits.conf; fs.nr_open is $(cat /proc/sys/fs/nr_open))."
fi
NOFILE=$(ulimit -n)
N=$WS_CONNS
if [[ $NOFILE != unlimited ]] && ((N > NOFILE - 200)); then
  N=$((NOFILE - 200))
  NOFILE_NOTE+=" Running with $N connections instead of $WS_CONNS (the open-files limit $NOFILE, less 200 for listeners, pipes and logs)."
fi
read -r PORT_LO PORT_HI </proc/sys/net/ipv4/ip_local_port_range
PORTS_PER_SRC=$((PORT_HI - PORT_LO + 1))
# At most three quarters of the range per source address (room for
# TIME_WAIT), and at most 10000 connections per address: beyond that the
# kernel's search for a free port in connect() slows wsload down (19000
# connections took 6 s from one address, 1.5 s from two).
PER_SRC=$((PORTS_PER_SRC * 3 / 4 < 10000 ? PORTS_PER_SRC * 3 / 4 : 10000))
SOURCES=$(((N + PER_SRC - 1) / PER_SRC))
sysv() { if [[ -r /proc/sys/$1 ]]; then tr '\t' ' ' <"/proc/sys/$1"; else echo "n/a"; fi; }

{
  echo "# bench/ws.sh run $RUN_ID"
  echo "commit:      $(git -C "$REPO_DIR" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$REPO_DIR" diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ has uncommitted changes)')"
  echo "tusk:        $("$TUSK_BIN" --version 2>&1 | head -n 1) ($TUSK_BIN)"
  [[ -n $WORKERMAN_DIR ]] && echo "workerman:   $(workerman_version) ($WORKERMAN_DIR), $("$PHP_CLI_BIN" -r 'echo PHP_VERSION;') CLI, select() loop$("$PHP_CLI_BIN" -m | grep -qx event && echo ' (event extension loaded)')"
  echo "machine:     $(nproc) cores, $(awk '/MemTotal/{printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
  echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) before the run"
  echo "limits:      ulimit -n $NOFILE_SOFT0/$NOFILE_HARD0 (soft/hard) at start, $NOFILE now; fs.nr_open $(sysv fs/nr_open); fs.file-max $(sysv fs/file-max)"
  echo "             net.ipv4.ip_local_port_range $PORT_LO-$PORT_HI ($PORTS_PER_SRC ports per source address): $SOURCES source address(es) 127.0.0.2.. for $N connections"
  echo "             net.core.somaxconn $(sysv net/core/somaxconn) (tusk listens with backlog 1024), net.ipv4.tcp_max_syn_backlog $(sysv net/ipv4/tcp_max_syn_backlog), wsload keeps 128 handshakes in flight"
  echo "             net.ipv4.tcp_mem $(sysv net/ipv4/tcp_mem) (pages), nf_conntrack_max $(sysv net/netfilter/nf_conntrack_max)"
  echo "settings:    WS_CONNS=$WS_CONNS N=$N ROUNDS=$ROUNDS BCAST_SIZE=$BCAST_SIZE BCAST_GAP_MS=$BCAST_GAP_MS SCALE_ECHO_CONNS=$SCALE_ECHO_CONNS"
  echo "             ECHO_CONNS='$ECHO_CONNS' ECHO_SIZE=$ECHO_SIZE DURATION=$DURATION WARMUP=$WARMUP ECHO_REPEAT=$ECHO_REPEAT SMALL_BCAST_CONNS=$SMALL_BCAST_CONNS"
  echo "             TUSK_WORKERS=$TUSK_WORKERS TUSK_ARGS='$TUSK_ARGS' WORKERMAN_PROCS=$WORKERMAN_PROCS"
} | tee "$INFO" >&2
if [[ -n $NOFILE_NOTE ]]; then
  note "$NOFILE_NOTE"
  echo "NOTE: $NOFILE_NOTE" >>"$INFO"
fi
((N >= 100)) || die "only $N connections possible; raise ulimit -n"

printf 'label\trole\tpid\trss_kB\tpss_kB\tprivate_kB\tanon_kB\n' >"$RUN_DIR/mem.tsv"

# ---------------------------------------------------------------- 1. scale
log "scale: $N idle connections to tusk ($TUSK_WORKERS workers)"
start_tusk tusk "$TUSK_WS_PORT" "$TUSK_WORKERS"
TUSK=$BG_PID
mapfile -t TW < <(tusk_workers "$TMP/tusk.pid")
wait_quiet "$TUSK" "${TW[@]}"
mem_snapshot start "$TUSK" "${TW[@]}"

SCALE_OUT=$RUN_DIR/scale.out
"$WSLOAD" -p "$TUSK_WS_PORT" -n "$N" --sources "$SOURCES" --pause --rounds "$ROUNDS" --bcast-size "$BCAST_SIZE" \
  --gap "$BCAST_GAP_MS" --echo-conns "$SCALE_ECHO_CONNS" --echo-size "$ECHO_SIZE" --echo-secs "$DURATION" \
  --echo-warmup "$WARMUP" --cpu-pids "$(cpu_pids "$TUSK")" >"$SCALE_OUT" 2>"$RUN_DIR/scale.err" &
WSL_PID=$!
wait_pause "$SCALE_OUT" connected
log "$(grep '^connected' "$SCALE_OUT")"
wait_quiet "$TUSK" "${TW[@]}"
sleep "$SETTLE"
tusk_status "$TMP/tusk.pid" >"$RUN_DIR/status-idle.txt"
mem_snapshot idle "$TUSK" "${TW[@]}"
HELD=$(awk '/^connections:/{print $2}' "$RUN_DIR/status-idle.txt")
log "tusk holds ${HELD:-?} connections; memory read"
wsload_go
wait_pause "$SCALE_OUT" broadcast
log "$(grep '^broadcast' "$SCALE_OUT")"
wait_quiet "$TUSK" "${TW[@]}"
mem_snapshot after-broadcast "$TUSK" "${TW[@]}"
wsload_go
SCALE_RC=0
wsload_wait || SCALE_RC=$?
[[ $SCALE_ECHO_CONNS -gt 0 ]] && log "$(grep '^echo' "$SCALE_OUT")"
log "$(grep '^done' "$SCALE_OUT" || echo "wsload exited with $SCALE_RC")"
wait_quiet "$TUSK" "${TW[@]}"
sleep "$SETTLE"
tusk_status "$TMP/tusk.pid" >"$RUN_DIR/status-closed.txt"
mem_snapshot closed "$TUSK" "${TW[@]}"
alive "$TUSK" || die "tusk exited during the scale run (see $TMP/tusk.log)"

# The same number of connections again: memory that the allocator kept
# after the first close is reused (flat), a leak grows again.
if ((AGAIN)); then
  log "scale: $N connections again (leak check)"
  AGAIN_OUT=$RUN_DIR/scale-again.out
  "$WSLOAD" -p "$TUSK_WS_PORT" -n "$N" --sources "$SOURCES" --first-source $((2 + SOURCES)) --pause >"$AGAIN_OUT" 2>"$RUN_DIR/scale-again.err" &
  WSL_PID=$!
  wait_pause "$AGAIN_OUT" connected
  wait_quiet "$TUSK" "${TW[@]}"
  sleep "$SETTLE"
  mem_snapshot idle-again "$TUSK" "${TW[@]}"
  wsload_go
  wsload_wait || log "wsload exited non-zero ($RUN_DIR/scale-again.err)"
  wait_quiet "$TUSK" "${TW[@]}"
  sleep "$SETTLE"
  mem_snapshot closed-again "$TUSK" "${TW[@]}"
  alive "$TUSK" || die "tusk exited during the second scale run (see $TMP/tusk.log)"
fi

# ---------------------------------------------------------------- 2. echo
# One measured echo run; besides wsload's result line, the CPU seconds of the
# server's first process (tusk: the master, which does all socket I/O) and of
# its children (the PHP workers) over the whole run go to .cpu.
run_echo() { # label port root conns repetition
  local out=$RUN_DIR/echo-$1-$4-r$5.out m0 m1 w0 w1
  local -a kids
  log "echo: $1, $4 connections, ${WARMUP}s + ${DURATION}s (run $5 of $ECHO_REPEAT)"
  mapfile -t kids < <(pgrep -P "$3")
  m0=$(ticks "$3"); w0=$(ticks "${kids[@]}")
  "$WSLOAD" -p "$2" -n "$4" --echo-conns "$4" --echo-size "$ECHO_SIZE" --echo-secs "$DURATION" \
    --echo-warmup "$WARMUP" --cpu-pids "$(cpu_pids "$3")" >"$out" 2>"${out%.out}.err" &
  WSL_PID=$!
  wsload_wait || log "wsload for $1 exited non-zero (${out%.out}.err)"
  m1=$(ticks "$3"); w1=$(ticks "${kids[@]}")
  echo "$(((m1 - m0) * 100 / CLK_TCK)) $(((w1 - w0) * 100 / CLK_TCK))" >"${out%.out}.cpu"
  log "$(grep '^echo' "$out" || echo "no result")"
}

CLK_TCK=$(getconf CLK_TCK)
# Echo servers: tusk (pooled: the master holds the connections), tusk-direct
# (--mode direct: each worker owns its connections), Workerman.
ECHO_SERVERS=(tusk)
declare -A ECHO_PORT=([tusk]=$TUSK_WS_PORT) ECHO_ROOT=([tusk]=$TUSK)
start_tusk tusk-direct "$TUSK_WSD_PORT" "$TUSK_WORKERS" direct
ECHO_SERVERS+=(tusk-direct)
ECHO_PORT[tusk-direct]=$TUSK_WSD_PORT
ECHO_ROOT[tusk-direct]=$BG_PID
if [[ -n $WORKERMAN_DIR ]]; then
  start_workerman workerman "$WORKERMAN_WS_PORT" "$WORKERMAN_PROCS"
  ECHO_SERVERS+=(workerman)
  ECHO_PORT[workerman]=$WORKERMAN_WS_PORT
  ECHO_ROOT[workerman]=$BG_PID
else
  log "WORKERMAN_DIR not set: skipping Workerman"
fi
# Repetitions rotate which server goes first.
for ((r = 1; r <= ECHO_REPEAT; r++)); do
  for c in $ECHO_CONNS; do
    for ((k = 0; k < ${#ECHO_SERVERS[@]}; k++)); do
      s=${ECHO_SERVERS[$(((k + r - 1) % ${#ECHO_SERVERS[@]}))]}
      run_echo "$s" "${ECHO_PORT[$s]}" "${ECHO_ROOT[$s]}" "$c" "$r"
    done
  done
done

# ---------------------------------------------------------------- 3. broadcast, one PHP process each
run_bcast() { # label port root
  local out=$RUN_DIR/bcast1-$1.out
  log "broadcast: $1 (one PHP process), $SMALL_BCAST_CONNS connections, $ROUNDS rounds"
  "$WSLOAD" -p "$2" -n "$SMALL_BCAST_CONNS" --hold "$SETTLE" --rounds "$ROUNDS" --bcast-size "$BCAST_SIZE" \
    --gap "$BCAST_GAP_MS" --cpu-pids "$(cpu_pids "$3")" >"$out" 2>"${out%.out}.err" &
  WSL_PID=$!
  wsload_wait || log "wsload for $1 exited non-zero (${out%.out}.err)"
  log "$(grep '^broadcast' "$out" || echo "no result")"
}
if ((SMALL_BCAST_CONNS > 0)); then
  start_tusk tusk1 "$TUSK_WS1_PORT" 1
  run_bcast tusk "$TUSK_WS1_PORT" "$BG_PID"
  if [[ -n $WORKERMAN_DIR ]]; then
    start_workerman workerman1 "$WORKERMAN_WS1_PORT" 1
    run_bcast workerman "$WORKERMAN_WS1_PORT" "$BG_PID"
  fi
fi

echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) after the run" | tee -a "$INFO" >&2

# ---------------------------------------------------------------- report
per_conn() { # label0 label1 role column -> bytes per connection
  local a b
  a=$(mem_get "$1" "$3" "$4"); b=$(mem_get "$2" "$3" "$4")
  awk -v a="$a" -v b="$b" -v n="$CONNECTED" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }'
}
kb() { mem_get "$1" "$2" "$3"; }
# Median over the echo runs of a server and connection count.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }
echo_median() {
  local r
  for ((r = 1; r <= ECHO_REPEAT; r++)); do
    [[ -f $RUN_DIR/echo-$1-$2-r$r.out ]] && kv "$RUN_DIR/echo-$1-$2-r$r.out" echo "$3"
  done | grep -v '^-$' | median
}
echo_cpu() {
  local r m w
  [[ -f $RUN_DIR/echo-$1-$2-r1.cpu ]] || { echo "-"; return; }
  m=$(for ((r = 1; r <= ECHO_REPEAT; r++)); do awk '{ printf "%.2f\n", $1 / 100 }' "$RUN_DIR/echo-$1-$2-r$r.cpu"; done | median)
  w=$(for ((r = 1; r <= ECHO_REPEAT; r++)); do awk '{ printf "%.2f\n", $2 / 100 }' "$RUN_DIR/echo-$1-$2-r$r.cpu"; done | median)
  echo "$m / $w"
}
AGAIN_HDR=""
((AGAIN)) && AGAIN_HDR=" → $N again, idle → closed"
again() { ((AGAIN)) && printf ' → %s → %s' "$(kb idle-again "$1" 6)" "$(kb closed-again "$1" 6)"; return 0; }

CONNECTED=$(kv "$SCALE_OUT" connected n)
[[ $CONNECTED == - || $CONNECTED -eq 0 ]] && die "no connections were made (see $RUN_DIR/scale.err)"
NW=${#TW[@]}
M_PRIV=$(per_conn start idle master 6)
M_RSS=$(per_conn start idle master 4)
W_PRIV=$(per_conn start idle worker 6)
W_RSS=$(per_conn start idle worker 4)
K_TCP=$(per_conn start idle kernel 4)
K_SLAB=$(per_conn start idle kernel 5)
M_TARGET=$(awk -v b="$M_PRIV" 'BEGIN { print (b < 4096 ? "yes" : "NO") }')
S=$SCALE_OUT

{
  echo "# WebSocket scale: tusk run, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Commit $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown); $(nproc) cores shared by server, load generator and other work (load avg before/after in info.txt): numbers are noisy."
  [[ -n $NOFILE_NOTE ]] && { echo; echo "**Note:** $NOFILE_NOTE"; }
  echo
  echo "## $CONNECTED idle connections (tusk, $TUSK_WORKERS workers)"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| connections held (requested / opened / failed / master's count) | $WS_CONNS / $CONNECTED / $(kv "$S" connected failed) / ${HELD:-?} |"
  echo "| connect + handshake, all of them | $(kv "$S" connected secs) s ($(kv "$S" connected sources) source addresses) |"
  echo "| **master (C): private memory per idle connection** | **$M_PRIV B** (target < 4096 B: $M_TARGET); RSS: $M_RSS B |"
  echo "| master private: start → $CONNECTED idle → after broadcasts → all closed$AGAIN_HDR | $(kb start master 6) → $(kb idle master 6) → $(kb after-broadcast master 6) → $(kb closed master 6)$(again master) kB |"
  echo "| workers (PHP, $NW processes together): private memory per connection | $W_PRIV B (RSS $W_RSS B); each worker holds a Connection object for the connections it has seen |"
  echo "| workers private: start → idle → after broadcasts → closed$AGAIN_HDR | $(kb start worker 6) → $(kb idle worker 6) → $(kb after-broadcast worker 6) → $(kb closed worker 6)$(again worker) kB |"
  echo "| kernel, not Tusk's (both ends of each loopback connection): TCP buffers (sockstat) / slab (system wide) | $K_TCP B / $K_SLAB B per connection |"
  echo "| **broadcast to all, per delivery: p50 / p90 / p99 / max** | **$(kv "$S" broadcast p50_ms) / $(kv "$S" broadcast p90_ms) / $(kv "$S" broadcast p99_ms) / $(kv "$S" broadcast max_ms) ms** |"
  echo "| broadcast: last delivery of a round, median / max over $(kv "$S" broadcast rounds) rounds | $(kv "$S" broadcast last_p50_ms) / $(kv "$S" broadcast last_max_ms) ms |"
  echo "| broadcast: deliveries / missing / server CPU per delivery | $(kv "$S" broadcast deliveries) / $(kv "$S" broadcast missing) / $(kv "$S" broadcast server_cpu_us_per_delivery) µs |"
  if ((SCALE_ECHO_CONNS > 0)); then
    echo "| echo on $(kv "$S" echo conns) connections beside the idle ones: msgs/s, RTT p50 / p99 | $(kv "$S" echo msgs_per_s), $(kv "$S" echo rtt_p50_ms) / $(kv "$S" echo rtt_p99_ms) ms |"
  fi
  echo "| wsload: dropped connections / protocol errors | $(kv "$S" "done" dropped) / $(kv "$S" "done" protocol_errors) |"
  echo
  echo "Memory per connection = (value with $CONNECTED connections open and idle after their handshake − value before any) / $CONNECTED,"
  echo "from /proc/PID/smaps_rollup (private = Private_Clean + Private_Dirty). Broadcast latency: from the moment the"
  echo "load generator sends \"broadcast ...\" on one connection until each connection has read the message (one"
  echo "client process reads all $CONNECTED sockets, so this includes its own time)."
  echo
  echo "## Echo: tusk ($TUSK_WORKERS workers; pooled and --mode direct) vs Workerman ($WORKERMAN_PROCS processes)"
  echo
  echo "Closed loop: each connection sends a $ECHO_SIZE-byte text message and waits for it to come back; ${WARMUP} s warmup, ${DURATION} s measured, $ECHO_REPEAT runs."
  echo "CPU µs/msg: CPU time of all the server's processes (tusk: master + workers) / messages."
  echo "tusk: the master holds every connection (they survive worker restarts and reloads); tusk-direct: each PHP"
  echo "worker owns the connections it accepted, as Workerman's processes do."
  echo
  echo "| conns | server | msgs/s | **vs workerman** | RTT p50 / p99 (ms) | CPU µs/msg | CPU s: master / workers |"
  echo "|---|---|---|---|---|---|---|"
  for c in $ECHO_CONNS; do
    wr=$(echo_median workerman "$c" msgs_per_s)
    for s in tusk tusk-direct workerman; do
      [[ -f $RUN_DIR/echo-$s-$c-r1.out ]] || continue
      tr=$(echo_median "$s" "$c" msgs_per_s)
      echo "| $c | $s | $tr | **$(div "$tr" "$wr")** | $(echo_median "$s" "$c" rtt_p50_ms) / $(echo_median "$s" "$c" rtt_p99_ms) | $(echo_median "$s" "$c" server_cpu_us_per_msg) | $(echo_cpu "$s" "$c") |"
    done
  done
  echo
  echo "Medians of $ECHO_REPEAT runs each (the order of servers rotates); msgs/s of every run:"
  echo
  for c in $ECHO_CONNS; do
    for s in tusk tusk-direct workerman; do
      [[ -f $RUN_DIR/echo-$s-$c-r1.out ]] || continue
      echo "* $s, $c connections: $(for ((r = 1; r <= ECHO_REPEAT; r++)); do kv "$RUN_DIR/echo-$s-$c-r$r.out" echo msgs_per_s; done | paste -sd' ' -)"
    done
  done
  echo
  echo "CPU s: whole runs (connect, warmup and measured part) of the first process and of its children,"
  echo "median over the runs; tusk's master does all the socket I/O (tusk-direct's and Workerman's masters are idle)."
  echo
  if ((SMALL_BCAST_CONNS > 0)); then
    echo
    echo "## Broadcast with one PHP process each, $SMALL_BCAST_CONNS connections"
    echo
    echo "Workerman broadcasts from PHP (\`foreach (\$worker->connections ...) send()\`) and only to its own process's connections,"
    echo "and its select() loop is limited to 1024 connections per process (no event extension in Debian), hence this size."
    echo
    echo "| server | p50 | p90 | p99 | max | last delivery, median / max | server CPU µs/delivery | missing |"
    echo "|---|---|---|---|---|---|---|---|"
    for s in tusk workerman; do
      f=$RUN_DIR/bcast1-$s.out
      [[ -f $f ]] || continue
      echo "| $s | $(kv "$f" broadcast p50_ms) | $(kv "$f" broadcast p90_ms) | $(kv "$f" broadcast p99_ms) | $(kv "$f" broadcast max_ms) | $(kv "$f" broadcast last_p50_ms) / $(kv "$f" broadcast last_max_ms) | $(kv "$f" broadcast server_cpu_us_per_delivery) | $(kv "$f" broadcast missing) |"
    done
    echo
    echo "(ms unless noted)"
  fi
} >"$RUN_DIR/table.md"

cat "$RUN_DIR/table.md"
log "results: $RUN_DIR/ (table.md, info.txt, mem.tsv, wsload outputs, server logs)"
