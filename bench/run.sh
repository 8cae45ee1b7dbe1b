#!/usr/bin/env bash
# Tusk benchmark harness: Tusk vs nginx + php-fpm (and optionally Workerman)
# on the same machine, same fixtures, same load generator. See bench/README.md.
#
#   bench/run.sh                         # full run, 10 s per measurement
#   DURATION=3 bench/run.sh              # quick run
#   SERVERS="nginx" bench/run.sh         # only the nginx + php-fpm baseline
#
# Nothing outside a private temp dir is configured or touched: nginx and
# php-fpm are Debian's binaries run with generated configs (-p/-c, -y/-c).
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
APP_DIR=$BENCH_DIR/app

# ---------------------------------------------------------------- settings
DURATION=${DURATION:-10}              # seconds per measured wrk run
WARMUP=${WARMUP:-2}                   # seconds of unmeasured wrk before each run
WRK_THREADS=${WRK_THREADS:-2}
WRK_TIMEOUT=${WRK_TIMEOUT:-5}         # wrk --timeout (s); slower replies count as errors
CONNS=${CONNS:-"64 256"}
ENDPOINTS=${ENDPOINTS:-"hello.php json.php static/4k.txt"}
SERVERS=${SERVERS:-"nginx tusk workerman"}
START_TIMEOUT=${START_TIMEOUT:-20}    # seconds a server gets to answer

NGINX_PORT=${NGINX_PORT:-18080}
TUSK_PORT=${TUSK_PORT:-18081}
WORKERMAN_PORT=${WORKERMAN_PORT:-18082}

NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
PHP_FPM_BIN=${PHP_FPM_BIN:-/usr/sbin/php-fpm8.2}
PHP_CLI_BIN=${PHP_CLI_BIN:-/usr/bin/php8.2}
NGINX_WORKERS=${NGINX_WORKERS:-2}     # = "auto" on the 2-core reference machine
FPM_CHILDREN=${FPM_CHILDREN:-4}
# php-fpm reads only the generated php.ini (opcache + PHP built-ins). Set to
# /etc/php/8.2/fpm/conf.d to load Debian's stock extension set instead.
FPM_INI_SCAN_DIR=${FPM_INI_SCAN_DIR:-}

TUSK_BIN=${TUSK_BIN:-$REPO_DIR/build/tusk}
TUSK_WORKERS=${TUSK_WORKERS:-2}
TUSK_ARGS=${TUSK_ARGS:-}

WORKERMAN_DIR=${WORKERMAN_DIR:-}
WORKERMAN_PROCS=${WORKERMAN_PROCS:-2}

RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}

# ---------------------------------------------------------------- helpers
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

TMP=""
STARTED=()            # root pids of every server process this script started
declare -A ROOTS=()   # server -> space separated root pids (CPU accounting)
declare -A LOGS=()    # server -> log files to show when it fails
declare -A PORT=()    # server -> port
declare -A LABEL=([nginx]="nginx+php-fpm" [tusk]="tusk" [workerman]="workerman")

# Every pid in the trees under the given roots, plus every process in the
# sessions they lead (servers are started with setsid, so that catches
# children even if they were re-parented). Prints "pid ticks" lines, ticks =
# utime+stime+cutime+cstime (cutime/cstime only ever hold already-reaped
# children, so nothing is counted twice).
tree_snapshot() {
  local -A ppid=() sess=() ticks=() sel=()
  local f line pid r changed
  local -a a
  for f in /proc/[0-9]*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue
    pid=${f#/proc/}; pid=${pid%/stat}
    read -r -a a <<<"${line##*) }"
    # a[0]=state a[1]=ppid a[3]=session a[11]=utime a[12]=stime a[13]=cutime a[14]=cstime
    ppid[$pid]=${a[1]}; sess[$pid]=${a[3]}
    ticks[$pid]=$((a[11] + a[12] + a[13] + a[14]))
  done
  for r in "$@"; do
    if [[ -n ${ticks[$r]:-} ]]; then sel[$r]=1; fi
  done
  for pid in "${!sess[@]}"; do
    for r in "$@"; do
      if [[ ${sess[$pid]} == "$r" ]]; then sel[$pid]=1; fi
    done
  done
  changed=1
  while ((changed)); do
    changed=0
    for pid in "${!ppid[@]}"; do
      if [[ -z ${sel[$pid]:-} && -n ${sel[${ppid[$pid]}]:-} ]]; then sel[$pid]=1; changed=1; fi
    done
  done
  for pid in "${!sel[@]}"; do echo "$pid ${ticks[$pid]}"; done
  return 0
}

tree_ticks() { tree_snapshot "$@" | awk '{ s += $2 } END { print s + 0 }'; }
tree_pids() { tree_snapshot "$@" | awk '{ print $1 }'; }

# True while any of the given pids is still a live (non-zombie) process.
any_alive() {
  local p
  for p in "$@"; do
    if [[ -e /proc/$p ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null; then return 0; fi
  done
  return 1
}

# Stop a server the way a service manager would: SIGTERM to its root process
# (masters stop their own children), then SIGTERM to whatever is left of the
# tree after 5 s, then SIGKILL.
stop_tree() {
  local root=$1 pids i
  pids=$(tree_pids "$root")
  [[ -z $pids ]] && return 0
  kill -TERM "$root" 2>/dev/null || true
  # shellcheck disable=SC2086
  for ((i = 0; i < 50; i++)); do any_alive $pids || break; sleep 0.1; done
  # shellcheck disable=SC2086
  if any_alive $pids; then
    log "pid $root did not stop within 5 s after SIGTERM; terminating its process tree"
    kill -TERM -- "-$root" 2>/dev/null || true
    kill -TERM $pids 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do any_alive $pids || break; sleep 0.1; done
    kill -KILL -- "-$root" 2>/dev/null || true
    kill -KILL $pids 2>/dev/null || true
  fi
  wait "$root" 2>/dev/null || true
}

cleanup() {
  local rc=$? r
  trap - EXIT INT TERM
  set +e
  if [[ -n $WRK_PID ]]; then kill "$WRK_PID" 2>/dev/null; wait "$WRK_PID" 2>/dev/null; fi
  if ((${#STARTED[@]})); then
    log "stopping servers"
    for r in "${STARTED[@]}"; do stop_tree "$r"; done
  fi
  if [[ -n $TMP && -d $TMP ]]; then
    if [[ -n ${RUN_DIR:-} && -d ${RUN_DIR:-} ]]; then
      cp "$TMP"/*.log "$RUN_DIR"/ 2>/dev/null
    fi
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wrk runs in the background so that a signal to this script acts at once.
WRK_PID=""
run_wrk() {
  local out=$1 rc=0; shift
  wrk "$@" >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || rc=$?
  WRK_PID=""
  return "$rc"
}

# Start "$@" as its own session leader; sets BG_PID (== its session id).
BG_PID=""
start_bg() {
  local logf=$1; shift
  setsid "$@" >"$logf" 2>&1 </dev/null &
  BG_PID=$!
  STARTED+=("$BG_PID")
  # setsid only execs in place (keeping the pid) when not a group leader,
  # which holds unless this script runs with job control (bash -m).
  local sid="" line i
  local -a f
  for ((i = 0; i < 40; i++)); do
    { read -r line <"/proc/$BG_PID/stat" && read -r -a f <<<"${line##*) }" && sid=${f[3]}; } 2>/dev/null || true
    [[ $sid == "$BG_PID" ]] && break
    sleep 0.05
  done
  [[ $sid == "$BG_PID" ]] || die "could not start $1 in its own session (is job control on? run bench/run.sh as a script)"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

show_logs() {
  local f
  for f in ${LOGS[$1]:-}; do
    [[ -s $f ]] || continue
    printf -- '---- %s (last 20 lines)\n' "$f" >&2
    tail -n 20 "$f" >&2
  done
}

roots_alive() {
  local r
  for r in ${ROOTS[$1]}; do
    [[ -e /proc/$r ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$r/status" 2>/dev/null || return 1
  done
}

# Wait until the server answers HTTP at all (any status), or fail clearly.
wait_up() {
  local server=$1 url="http://127.0.0.1:${PORT[$1]}/hello.php" deadline=$((SECONDS + START_TIMEOUT)) code
  while :; do
    if ! roots_alive "$server"; then
      show_logs "$server"
      die "${LABEL[$server]} exited during startup (logs above)"
    fi
    code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$url" 2>/dev/null || true)
    [[ -n $code && $code != 000 ]] && return 0
    if ((SECONDS >= deadline)); then
      show_logs "$server"
      die "${LABEL[$server]} did not answer on $url within ${START_TIMEOUT}s (logs above)"
    fi
    sleep 0.2
  done
}

# Each endpoint must return 200 with exactly the expected bytes.
check_endpoints() {
  local server=$1 ep code got
  for ep in $ENDPOINTS; do
    got=$TMP/got.$server.body
    code=$(curl -s -o "$got" --max-time 5 -w '%{http_code}' "http://127.0.0.1:${PORT[$server]}/$ep" || true)
    if [[ $code != 200 ]]; then
      show_logs "$server"
      die "${LABEL[$server]}: GET /$ep returned HTTP ${code:-nothing}, expected 200"
    fi
    if ! cmp -s "$got" "$TMP/expect/$ep"; then
      printf 'expected (first 200 bytes): %s\ngot      (first 200 bytes): %s\n' \
        "$(head -c 200 "$TMP/expect/$ep")" "$(head -c 200 "$got")" >&2
      die "${LABEL[$server]}: GET /$ep returned 200 but an unexpected body ($(wc -c <"$got") bytes, expected $(wc -c <"$TMP/expect/$ep"))"
    fi
  done
  OPCACHE[$server]=$(curl -s --max-time 5 "http://127.0.0.1:${PORT[$server]}/opcache.php" || true)
  [[ ${OPCACHE[$server]} == on || ${OPCACHE[$server]} == off ]] || OPCACHE[$server]="unknown"
  log "${LABEL[$server]}: all endpoints OK (opcache: ${OPCACHE[$server]})"
}
declare -A OPCACHE=()

# wrk output -> "requests rps p50_ms p99_ms non2xx socket_errors"
parse_wrk() {
  awk '
    function ms(v,   n, u) {
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n / 1000
      if (u == "ms") return n
      if (u == "s")  return n * 1000
      if (u == "m")  return n * 60000
      return n
    }
    / requests in /            { req = $1 }
    /^Requests\/sec:/          { rps = $2 }
    /^[ \t]+50%[ \t]/          { p50 = ms($2) }
    /^[ \t]+99%[ \t]/          { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ {
      s = $0; gsub(/[^0-9 ]/, " ", s); n = split(s, f, " ")
      for (i = 1; i <= n; i++) serr += f[i]
    }
    END {
      if (req == "" || rps == "") exit 1
      printf "%d %.2f %.3f %.3f %d %d\n", req, rps, p50, p99, non2xx, serr
    }'
}

# ---------------------------------------------------------------- preflight
for tool in wrk curl setsid "$NGINX_BIN" "$PHP_FPM_BIN" "$PHP_CLI_BIN"; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found (install the benchmark packages: scripts/install-deps.sh --bench)"
done
[[ -f $APP_DIR/hello.php && -f $APP_DIR/json.php && -f $APP_DIR/static/4k.txt ]] ||
  die "fixtures missing under $APP_DIR"
[[ $(wc -c <"$APP_DIR/static/4k.txt") -eq 4096 ]] || die "$APP_DIR/static/4k.txt is not 4096 bytes"

# wrk and the servers want a few hundred descriptors each.
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]]; then ulimit -n 65536 2>/dev/null || true
else ulimit -n "$hard" 2>/dev/null || true; fi

want() { [[ " $SERVERS " == *" $1 "* ]]; }
RUN_SERVERS=()
if want nginx; then RUN_SERVERS+=(nginx); fi
if want tusk; then
  case $TUSK_BIN in /*) ;; *) TUSK_BIN=$PWD/$TUSK_BIN ;; esac
  if [[ ! -e $TUSK_BIN ]]; then
    log "tusk binary not found at $TUSK_BIN, skipping (build it, or set TUSK_BIN)"
  elif [[ ! -x $TUSK_BIN ]]; then
    die "tusk binary at $TUSK_BIN is not executable"
  else
    RUN_SERVERS+=(tusk)
  fi
fi
if want workerman; then
  if [[ -z $WORKERMAN_DIR ]]; then
    log "WORKERMAN_DIR not set, skipping Workerman"
  elif [[ ! -d $WORKERMAN_DIR ]]; then
    die "WORKERMAN_DIR=$WORKERMAN_DIR is not a directory"
  else
    RUN_SERVERS+=(workerman)
  fi
fi
((${#RUN_SERVERS[@]})) || die "no server to benchmark (SERVERS=$SERVERS)"

TMP=$(mktemp -d /tmp/tusk-bench.XXXXXX)
chmod 755 "$TMP"   # nginx/php-fpm workers run unprivileged and need the socket path

RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
RUN_DIR=$RESULTS_DIR/$RUN_ID
mkdir -p "$RUN_DIR"

# Expected bodies.
mkdir -p "$TMP/expect/static"
printf 'Hello, World!' >"$TMP/expect/hello.php"
"$PHP_CLI_BIN" -n "$APP_DIR/json.php" >"$TMP/expect/json.php"
cp "$APP_DIR/static/4k.txt" "$TMP/expect/static/4k.txt"
for ep in $ENDPOINTS; do
  [[ -f $TMP/expect/$ep ]] || die "unknown endpoint $ep (known: hello.php json.php static/4k.txt)"
done

for s in "${RUN_SERVERS[@]}"; do
  PORT[$s]=$(case $s in nginx) echo "$NGINX_PORT" ;; tusk) echo "$TUSK_PORT" ;; workerman) echo "$WORKERMAN_PORT" ;; esac)
  if port_busy "${PORT[$s]}"; then die "port ${PORT[$s]} (for ${LABEL[$s]}) is already in use; set ${s^^}_PORT"; fi
done

# Unprivileged user for nginx/php-fpm workers when we are root.
RUN_AS=""
if ((EUID == 0)); then
  for u in www-data nobody; do
    if id "$u" >/dev/null 2>&1 && runuser -u "$u" -- test -r "$APP_DIR/static/4k.txt" 2>/dev/null; then
      RUN_AS=$u; break
    fi
  done
  [[ -n $RUN_AS ]] || RUN_AS=root   # app dir not readable by www-data/nobody
fi

# ---------------------------------------------------------------- nginx + php-fpm
start_nginx() {
  local d=$TMP/nginx sock=$TMP/php-fpm.sock user_line="" pool_user="" fpm_flags=()
  mkdir -p "$d"
  if [[ -n $RUN_AS ]]; then
    user_line="user $RUN_AS;"
    pool_user="user = $RUN_AS"
    [[ $RUN_AS == root ]] && fpm_flags+=(-R)
  fi

  cat >"$TMP/php.ini" <<EOF
; generated by bench/run.sh: Debian production defaults that matter here
[PHP]
zend_extension = opcache.so
expose_php = Off
memory_limit = 128M
output_buffering = 4096
display_errors = Off
log_errors = On
error_log = $TMP/php-errors.log
error_reporting = E_ALL & ~E_DEPRECATED & ~E_STRICT
date.timezone = UTC

[opcache]
opcache.enable = 1
opcache.enable_cli = 0
; as Debian's conf.d/10-opcache.ini
opcache.jit = off
; validate_timestamps / revalidate_freq / memory_consumption: PHP defaults (1 / 2 / 128)
EOF

  cat >"$TMP/php-fpm.conf" <<EOF
; generated by bench/run.sh
[global]
pid = $TMP/php-fpm.pid
error_log = $TMP/php-fpm.log
daemonize = no

[bench]
$pool_user
listen = $sock
listen.mode = 0666
pm = static
pm.max_children = $FPM_CHILDREN
pm.max_requests = 0
catch_workers_output = yes
EOF

  cat >"$d/nginx.conf" <<EOF
# generated by bench/run.sh
$user_line
worker_processes $NGINX_WORKERS;
pid $d/nginx.pid;
error_log $TMP/nginx-error.log warn;
daemon off;
master_process on;

events {
    worker_connections 4096;
}

http {
    types {
        text/html        html;
        text/plain       txt;
        application/json json;
    }
    default_type application/octet-stream;

    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000;

    client_body_temp_path $d/client_body;
    proxy_temp_path       $d/proxy;
    fastcgi_temp_path     $d/fastcgi;
    uwsgi_temp_path       $d/uwsgi;
    scgi_temp_path        $d/scgi;

    server {
        listen 127.0.0.1:$NGINX_PORT default_server;
        server_name _;
        root $APP_DIR;

        location / {
            try_files \$uri =404;
        }

        location ~ \.php\$ {
            try_files \$uri =404;
            fastcgi_pass unix:$sock;
            fastcgi_index index.php;
            # Debian's /etc/nginx/fastcgi_params, inlined
            fastcgi_param QUERY_STRING      \$query_string;
            fastcgi_param REQUEST_METHOD    \$request_method;
            fastcgi_param CONTENT_TYPE      \$content_type;
            fastcgi_param CONTENT_LENGTH    \$content_length;
            fastcgi_param SCRIPT_NAME       \$fastcgi_script_name;
            fastcgi_param SCRIPT_FILENAME   \$document_root\$fastcgi_script_name;
            fastcgi_param REQUEST_URI       \$request_uri;
            fastcgi_param DOCUMENT_URI      \$document_uri;
            fastcgi_param DOCUMENT_ROOT     \$document_root;
            fastcgi_param SERVER_PROTOCOL   \$server_protocol;
            fastcgi_param REQUEST_SCHEME    \$scheme;
            fastcgi_param HTTPS             \$https if_not_empty;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_SOFTWARE   nginx/\$nginx_version;
            fastcgi_param REMOTE_ADDR       \$remote_addr;
            fastcgi_param REMOTE_PORT       \$remote_port;
            fastcgi_param SERVER_ADDR       \$server_addr;
            fastcgi_param SERVER_PORT       \$server_port;
            fastcgi_param SERVER_NAME       \$server_name;
            fastcgi_param REDIRECT_STATUS   200;
        }
    }
}
EOF

  PHP_INI_SCAN_DIR=$FPM_INI_SCAN_DIR "$PHP_FPM_BIN" -t "${fpm_flags[@]}" -y "$TMP/php-fpm.conf" -c "$TMP/php.ini" >"$TMP/php-fpm-test.log" 2>&1 ||
    { cat "$TMP/php-fpm-test.log" >&2; die "php-fpm rejected its generated config $TMP/php-fpm.conf"; }
  "$NGINX_BIN" -t -p "$d" -c "$d/nginx.conf" >"$TMP/nginx-test.log" 2>&1 ||
    { cat "$TMP/nginx-test.log" >&2; die "nginx rejected its generated config $d/nginx.conf"; }

  local fpm ngx i
  start_bg "$TMP/php-fpm.stdout.log" env PHP_INI_SCAN_DIR="$FPM_INI_SCAN_DIR" \
    "$PHP_FPM_BIN" -F "${fpm_flags[@]}" -y "$TMP/php-fpm.conf" -c "$TMP/php.ini"
  fpm=$BG_PID
  ROOTS[nginx]=$fpm
  LOGS[nginx]="$TMP/php-fpm.log $TMP/php-fpm.stdout.log $TMP/nginx-error.log $TMP/nginx.stdout.log"
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    [[ -S $sock ]] && break
    roots_alive nginx || { show_logs nginx; die "php-fpm exited during startup (logs above)"; }
    sleep 0.1
  done
  [[ -S $sock ]] || { show_logs nginx; die "php-fpm did not create $sock within ${START_TIMEOUT}s"; }

  start_bg "$TMP/nginx.stdout.log" "$NGINX_BIN" -p "$d" -c "$d/nginx.conf"
  ngx=$BG_PID
  ROOTS[nginx]="$ngx $fpm"
  wait_up nginx
  log "nginx ($NGINX_WORKERS workers) + php-fpm (pm=static, $FPM_CHILDREN children) on 127.0.0.1:$NGINX_PORT"
}

# ---------------------------------------------------------------- tusk
start_tusk() {
  local extra=()
  read -r -a extra <<<"$TUSK_ARGS"
  local cmd=("$TUSK_BIN" serve "$APP_DIR" --listen "127.0.0.1:$TUSK_PORT" --workers "$TUSK_WORKERS" "${extra[@]}")
  log "starting: ${cmd[*]}"
  start_bg "$TMP/tusk.log" "${cmd[@]}"
  ROOTS[tusk]=$BG_PID
  LOGS[tusk]="$TMP/tusk.log"
  wait_up tusk
  log "tusk ($TUSK_WORKERS workers) on 127.0.0.1:$TUSK_PORT"
}

# ---------------------------------------------------------------- workerman
start_workerman() {
  start_bg "$TMP/workerman.stdout.log" env WORKERMAN_DIR="$WORKERMAN_DIR" \
    WORKERMAN_LISTEN="127.0.0.1:$WORKERMAN_PORT" WORKERMAN_PROCS="$WORKERMAN_PROCS" \
    WORKERMAN_RUNDIR="$TMP" "$PHP_CLI_BIN" -d opcache.enable_cli=1 \
    "$BENCH_DIR/workerman/start.php" start
  ROOTS[workerman]=$BG_PID
  LOGS[workerman]="$TMP/workerman.stdout.log $TMP/workerman.log $TMP/workerman.stdout"
  wait_up workerman
  log "workerman ($WORKERMAN_PROCS processes) on 127.0.0.1:$WORKERMAN_PORT"
}

# ---------------------------------------------------------------- run
CLK_TCK=$(getconf CLK_TCK)
GIT_REV=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
HOST=$(hostname 2>/dev/null || echo unknown)

for s in "${RUN_SERVERS[@]}"; do "start_$s"; done
for s in "${RUN_SERVERS[@]}"; do check_endpoints "$s"; done

cp "$TMP/php.ini" "$TMP/php-fpm.conf" "$RUN_DIR"/ 2>/dev/null || true
cp "$TMP/nginx/nginx.conf" "$RUN_DIR"/ 2>/dev/null || true

{
  echo "run:        $RUN_ID (git $GIT_REV) on $HOST, $(nproc) CPUs, $(uname -sr)"
  echo "load:       $(wrk -v 2>&1 | head -n 1 || true); -t$WRK_THREADS, ${WARMUP}s warm-up + ${DURATION}s measured, connections: $CONNS"
  echo "servers:    ${RUN_SERVERS[*]}"
  if [[ -n ${PORT[nginx]:-} ]]; then echo "nginx:      $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'), $NGINX_WORKERS workers; $("$PHP_FPM_BIN" -v | head -n 1 | cut -d'(' -f1)pm=static $FPM_CHILDREN children"; fi
  if [[ -n ${PORT[tusk]:-} ]]; then echo "tusk:       $TUSK_BIN --workers $TUSK_WORKERS $TUSK_ARGS"; fi
  if [[ -n ${PORT[workerman]:-} ]]; then echo "workerman:  $WORKERMAN_DIR, $WORKERMAN_PROCS processes"; fi
  for s in "${RUN_SERVERS[@]}"; do printf 'opcache:    %s=%s\n' "${LABEL[$s]}" "${OPCACHE[$s]}"; done
} | tee "$RUN_DIR/info.txt" >&2

TSV_HEADER="run_id	git	host	server	endpoint	conns	threads	duration_s	requests	rps	p50_ms	p99_ms	cpu_ticks	clk_tck	cpu_us_per_req	non2xx	socket_errors"
RUN_TSV=$RUN_DIR/results.tsv
ALL_TSV=$RESULTS_DIR/results.tsv
echo "$TSV_HEADER" >"$RUN_TSV"
[[ -s $ALL_TSV ]] || echo "$TSV_HEADER" >"$ALL_TSV"

n_eps=$(wc -w <<<"$ENDPOINTS"); n_conns=$(wc -w <<<"$CONNS")
total=$((${#RUN_SERVERS[@]} * n_eps * n_conns)); done_runs=0
log "$total runs, about $((total * (WARMUP + DURATION + 1))) s"

for ep in $ENDPOINTS; do
  for c in $CONNS; do
    for s in "${RUN_SERVERS[@]}"; do
      done_runs=$((done_runs + 1))
      url="http://127.0.0.1:${PORT[$s]}/$ep"
      log "[$done_runs/$total] ${LABEL[$s]} /$ep c=$c"
      out=$RUN_DIR/wrk.$s.${ep//\//_}.c$c.txt
      if ((WARMUP > 0)); then
        run_wrk /dev/null -t"$WRK_THREADS" -c"$c" -d"${WARMUP}s" --timeout "${WRK_TIMEOUT}s" "$url" || true
      fi
      # shellcheck disable=SC2086
      t0=$(tree_ticks ${ROOTS[$s]})
      run_wrk "$out" -t"$WRK_THREADS" -c"$c" -d"${DURATION}s" --timeout "${WRK_TIMEOUT}s" --latency "$url" ||
        { cat "$out" >&2; die "wrk failed against $url"; }
      # shellcheck disable=SC2086
      t1=$(tree_ticks ${ROOTS[$s]})
      roots_alive "$s" || { show_logs "$s"; die "${LABEL[$s]} died during the /$ep c=$c run"; }
      parsed=$(parse_wrk <"$out") || { cat "$out" >&2; die "could not parse wrk output ($out)"; }
      read -r req rps p50 p99 non2xx serr <<<"$parsed"
      dt=$((t1 - t0))
      cpu=$(awk -v t="$dt" -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.2f", n ? t / hz * 1e6 / n : 0 }')
      row="$RUN_ID	$GIT_REV	$HOST	$s	$ep	$c	$WRK_THREADS	$DURATION	$req	$rps	$p50	$p99	$dt	$CLK_TCK	$cpu	$non2xx	$serr"
      echo "$row" >>"$RUN_TSV"
      echo "$row" >>"$ALL_TSV"
      printf '    %s req/s, p99 %s ms, %s µs CPU/req%s\n' "$rps" "$p99" "$cpu" \
        "$( ((non2xx + serr)) && echo ", ERRORS: non-2xx=$non2xx socket=$serr" )" >&2
      sleep 1
    done
  done
done

# ---------------------------------------------------------------- report
awk -F'\t' -v label_nginx="${LABEL[nginx]}" '
  NR == 1 { next }
  {
    n++; ep[n] = $5; c[n] = $6; sv[n] = $4; rps[n] = $10; p99[n] = $12; cpu[n] = $15
    err[n] = ($16 + $17) ? sprintf("non-2xx %d, socket %d", $16, $17) : "0"
    if ($4 == "nginx") base[$5 SUBSEP $6] = $10
  }
  END {
    lab["nginx"] = label_nginx; lab["tusk"] = "tusk"; lab["workerman"] = "workerman"
    print "| endpoint | conns | server | req/s | p99 | CPU µs/req | req/s vs nginx | errors |"
    print "|---|---:|---|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
      b = base[ep[i] SUBSEP c[i]]
      ratio = (b > 0) ? sprintf("%.2f", rps[i] / b) : "-"
      printf "| /%s | %d | %s | %.0f | %.2f ms | %.1f | %s | %s |\n", ep[i], c[i], lab[sv[i]], rps[i], p99[i], cpu[i], ratio, err[i]
    }
  }' "$RUN_TSV" >"$RUN_DIR/table.md"

echo
cat "$RUN_DIR/table.md"
echo
log "raw results: $RUN_DIR/ (wrk output, configs, table.md); appended to $ALL_TSV"
