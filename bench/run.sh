#!/usr/bin/env bash
# Tusk benchmark harness: Tusk (pooled and direct mode, classic scripts and
# worker mode) vs nginx + php-fpm (and optionally Workerman) on the same
# machine, same fixtures, same load generator, plus a "slow mix" (10% of
# requests take 50 ms). See bench/README.md.
#
#   bench/run.sh                         # full run, 10 s per measurement
#   DURATION=3 bench/run.sh              # quick run
#   SERVERS="nginx" bench/run.sh         # only the nginx + php-fpm baseline
#   SLOWMIX=0 bench/run.sh               # without the slow-mix measurement
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
SERVERS=${SERVERS:-"nginx tusk tusk-direct tusk-worker-pooled tusk-worker-direct workerman"}
START_TIMEOUT=${START_TIMEOUT:-20}    # seconds a server gets to answer

NGINX_PORT=${NGINX_PORT:-18080}
TUSK_PORT=${TUSK_PORT:-18081}                # tusk --mode pooled
TUSK_DIRECT_PORT=${TUSK_DIRECT_PORT:-18083}  # tusk --mode direct
TUSK_WORKER_PORT=${TUSK_WORKER_PORT:-18084}                # tusk --mode pooled --worker
TUSK_WORKER_DIRECT_PORT=${TUSK_WORKER_DIRECT_PORT:-18085}  # tusk --mode direct --worker
WORKERMAN_PORT=${WORKERMAN_PORT:-18082}

NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
PHP_FPM_BIN=${PHP_FPM_BIN:-/usr/sbin/php-fpm8.2}
PHP_CLI_BIN=${PHP_CLI_BIN:-/usr/bin/php8.2}
NGINX_WORKERS=${NGINX_WORKERS:-2}     # = "auto" on the 2-core reference machine
FPM_CHILDREN=${FPM_CHILDREN:-4}
# php-fpm reads the generated php.ini plus every file in this directory:
# Debian's full extension set, the same set Tusk loads by default (from
# /etc/php/8.2/embed/conf.d). Set it empty (FPM_INI_SCAN_DIR=) for OPcache
# and PHP's built-ins only.
FPM_INI_SCAN_DIR=${FPM_INI_SCAN_DIR-/etc/php/8.2/fpm/conf.d}

TUSK_BIN=${TUSK_BIN:-$REPO_DIR/build/tusk}
TUSK_WORKERS=${TUSK_WORKERS:-2}
TUSK_ARGS=${TUSK_ARGS:-}
# Worker mode (tusk-worker-*): this script boots once per worker and serves
# every non-static request (bench/app/worker.php routes on the path).
TUSK_WORKER_SCRIPT=${TUSK_WORKER_SCRIPT:-$APP_DIR/worker.php}

# Slow mix: one wrk with bench/slowmix.lua, SLOW_PCT % of requests to
# /slow.php (usleep 50 ms), the rest to /hello.php; p99 of the fast ones.
SLOWMIX=${SLOWMIX:-1}                 # 0 = skip
SLOWMIX_CONNS=${SLOWMIX_CONNS:-32}    # = wrk threads (one connection each)
SLOWMIX_SERVERS=${SLOWMIX_SERVERS:-"nginx tusk tusk-direct tusk-worker-pooled tusk-worker-direct"}
SLOW_PCT=${SLOW_PCT:-10}
export SLOW_PCT                       # read by slowmix.lua

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
declare -A LABEL=([nginx]="nginx+php-fpm" [tusk]="tusk-pooled" [tusk-direct]="tusk-direct"
  [tusk-worker-pooled]="tusk-worker-pooled" [tusk-worker-direct]="tusk-worker-direct" [workerman]="workerman")
declare -A PORTVAR=([nginx]=NGINX_PORT [tusk]=TUSK_PORT [tusk-direct]=TUSK_DIRECT_PORT
  [tusk-worker-pooled]=TUSK_WORKER_PORT [tusk-worker-direct]=TUSK_WORKER_DIRECT_PORT [workerman]=WORKERMAN_PORT)
TUSK_SERVERS="tusk tusk-direct tusk-worker-pooled tusk-worker-direct"
# "server=label ..." for the awk report scripts
LABELS_KV=$(for k in "${!LABEL[@]}"; do printf '%s=%s ' "$k" "${LABEL[$k]}"; done)

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
  if slowmix_wanted "$server"; then
    code=$(curl -s -o "$got" --max-time 5 -w '%{http_code}' "http://127.0.0.1:${PORT[$server]}/slow.php" || true)
    [[ $code == 200 && $(<"$got") == slow ]] ||
      { show_logs "$server"; die "${LABEL[$server]}: GET /slow.php returned HTTP ${code:-nothing} '$(head -c 100 "$got")', expected 200 'slow'"; }
  fi
  OPCACHE[$server]=$(curl -s --max-time 5 "http://127.0.0.1:${PORT[$server]}/opcache.php" || true)
  [[ ${OPCACHE[$server]} == on || ${OPCACHE[$server]} == off ]] || OPCACHE[$server]="unknown"
  # "<extensions> <zend extensions> <names,...>" (app/extensions.php)
  EXTS[$server]=$(curl -s --max-time 5 "http://127.0.0.1:${PORT[$server]}/extensions.php" || true)
  [[ ${EXTS[$server]} =~ ^[0-9]+\ [0-9]+\  ]] || EXTS[$server]="? ? "
  log "${LABEL[$server]}: all endpoints OK (opcache: ${OPCACHE[$server]}, extensions: ${EXTS[$server]%% *})"
}
declare -A OPCACHE=() EXTS=()

# One line comparing every server's loaded extensions with nginx+php-fpm's
# (or the first server's): "nginx+php-fpm=47+1 zend, tusk-pooled=47+1 zend
# (same set ...)". Modules that are compiled into one SAPI and cannot be
# configured are not a difference in configuration: cgi-fcgi is php-fpm's
# SAPI module, pcntl is built into Debian's CLI and embed SAPIs only.
SAPI_BUILTINS=" cgi-fcgi pcntl "
extensions_line() {
  local ref=${RUN_SERVERS[0]} s a b names refnames out="" extra missing e real
  [[ -n ${PORT[nginx]:-} ]] && ref=nginx
  refnames=${EXTS[$ref]#* * }
  for s in "${RUN_SERVERS[@]}"; do
    read -r a b names <<<"${EXTS[$s]}"
    out+="${out:+, }${LABEL[$s]}=$a+$b zend"
    [[ $s == "$ref" ]] && continue
    if [[ $names == "$refnames" ]]; then
      out+=" (same set)"
    else
      extra=$(comm -13 <(tr , '\n' <<<"$refnames" | sort) <(tr , '\n' <<<"$names" | sort) | paste -sd, -)
      missing=$(comm -23 <(tr , '\n' <<<"$refnames" | sort) <(tr , '\n' <<<"$names" | sort) | paste -sd, -)
      real=0
      for e in ${extra//,/ } ${missing//,/ }; do [[ $SAPI_BUILTINS == *" $e "* ]] || real=1; done
      if ((real)); then
        out+=" (DIFFERENT from ${LABEL[$ref]}: extra ${extra:-none}; missing ${missing:-none})"
        log "WARNING: ${LABEL[$s]} loads other PHP extensions than ${LABEL[$ref]} (extra ${extra:-none}; missing ${missing:-none})"
      else
        out+=" (same set; SAPI built-ins: extra ${extra:-none}, missing ${missing:-none})"
      fi
    fi
  done
  echo "$out"
}

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
[[ -f $APP_DIR/hello.php && -f $APP_DIR/json.php && -f $APP_DIR/static/4k.txt && -f $APP_DIR/slow.php &&
   -f $APP_DIR/opcache.php && -f $APP_DIR/extensions.php && -f $APP_DIR/worker.php && -f $BENCH_DIR/slowmix.lua ]] ||
  die "fixtures missing under $APP_DIR"
[[ $(wc -c <"$APP_DIR/static/4k.txt") -eq 4096 ]] || die "$APP_DIR/static/4k.txt is not 4096 bytes"

# wrk and the servers want a few hundred descriptors each.
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]]; then ulimit -n 65536 2>/dev/null || true
else ulimit -n "$hard" 2>/dev/null || true; fi

want() { [[ " $SERVERS " == *" $1 "* ]]; }
slowmix_wanted() { ((SLOWMIX)) && [[ " $SLOWMIX_SERVERS " == *" $1 "* ]]; }
RUN_SERVERS=()
if want nginx; then RUN_SERVERS+=(nginx); fi
wanted_tusk=()
for s in $TUSK_SERVERS; do if want "$s"; then wanted_tusk+=("$s"); fi; done
if ((${#wanted_tusk[@]})); then
  case $TUSK_BIN in /*) ;; *) TUSK_BIN=$PWD/$TUSK_BIN ;; esac
  case $TUSK_WORKER_SCRIPT in /*) ;; *) TUSK_WORKER_SCRIPT=$PWD/$TUSK_WORKER_SCRIPT ;; esac
  if [[ ! -e $TUSK_BIN ]]; then
    log "tusk binary not found at $TUSK_BIN, skipping (build it, or set TUSK_BIN)"
  elif [[ ! -x $TUSK_BIN ]]; then
    die "tusk binary at $TUSK_BIN is not executable"
  else
    RUN_SERVERS+=("${wanted_tusk[@]}")
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
  PORT[$s]=${!PORTVAR[$s]}
  if port_busy "${PORT[$s]}"; then die "port ${PORT[$s]} (for ${LABEL[$s]}) is already in use; set ${PORTVAR[$s]}"; fi
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

  # OPcache is loaded here unless the scan dir loads it (Debian's 10-opcache.ini).
  local opcache_line="zend_extension = opcache.so"
  if [[ -n $FPM_INI_SCAN_DIR ]]; then
    [[ -d $FPM_INI_SCAN_DIR ]] || die "FPM_INI_SCAN_DIR=$FPM_INI_SCAN_DIR is not a directory"
    if grep -qsE '^[[:space:]]*zend_extension[[:space:]]*=[[:space:]]*"?opcache' "$FPM_INI_SCAN_DIR"/*.ini; then
      opcache_line="; zend_extension = opcache.so: loaded by $FPM_INI_SCAN_DIR"
    fi
  fi

  cat >"$TMP/php.ini" <<EOF
; generated by bench/run.sh: Debian production defaults that matter here
; (plus every .ini in PHP_INI_SCAN_DIR=${FPM_INI_SCAN_DIR:-<none>})
[PHP]
$opcache_line
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
# Same binary, same worker count, same TUSK_ARGS; only --mode, --worker and
# the port differ.
declare -A TUSK_CMD=()
start_tusk_mode() {
  local server=$1 mode=$2 extra=(); shift 2
  read -r -a extra <<<"$TUSK_ARGS"
  local cmd=("$TUSK_BIN" serve "$APP_DIR" --listen "127.0.0.1:${PORT[$server]}" --workers "$TUSK_WORKERS" --mode "$mode" "$@" "${extra[@]}")
  TUSK_CMD[$server]="${cmd[*]}"
  log "starting: ${cmd[*]}"
  start_bg "$TMP/$server.log" "${cmd[@]}"
  ROOTS[$server]=$BG_PID
  LOGS[$server]="$TMP/$server.log"
  wait_up "$server"
  log "${LABEL[$server]} ($TUSK_WORKERS workers, --mode $mode${1:+ $*}) on 127.0.0.1:${PORT[$server]}"
}
start_tusk() { start_tusk_mode tusk pooled; }
start_tusk_direct() { start_tusk_mode tusk-direct direct; }
start_tusk_worker_pooled() { start_tusk_mode tusk-worker-pooled pooled --worker "$TUSK_WORKER_SCRIPT"; }
start_tusk_worker_direct() { start_tusk_mode tusk-worker-direct direct --worker "$TUSK_WORKER_SCRIPT"; }

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

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for s in "${RUN_SERVERS[@]}"; do "start_${s//-/_}"; done
for s in "${RUN_SERVERS[@]}"; do check_endpoints "$s"; done

cp "$TMP/php.ini" "$TMP/php-fpm.conf" "$RUN_DIR"/ 2>/dev/null || true
cp "$TMP/nginx/nginx.conf" "$RUN_DIR"/ 2>/dev/null || true

{
  echo "run:        $RUN_ID (git $GIT_REV) on $HOST, $(nproc) CPUs, $(uname -sr)"
  echo "load:       $(wrk -v 2>&1 | head -n 1 || true); -t$WRK_THREADS, ${WARMUP}s warm-up + ${DURATION}s measured, connections: $CONNS"
  echo "servers:    ${RUN_SERVERS[*]}"
  if [[ -n ${PORT[nginx]:-} ]]; then echo "nginx:      $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'), $NGINX_WORKERS workers; $("$PHP_FPM_BIN" -v | head -n 1 | cut -d'(' -f1)pm=static $FPM_CHILDREN children, PHP_INI_SCAN_DIR=${FPM_INI_SCAN_DIR:-<none>}"; fi
  for s in $TUSK_SERVERS; do
    if [[ -n ${PORT[$s]:-} ]]; then printf '%-11s %s\n' "${LABEL[$s]}:" "${TUSK_CMD[$s]}"; fi
  done
  if [[ -n ${PORT[workerman]:-} ]]; then echo "workerman:  $WORKERMAN_DIR, $WORKERMAN_PROCS processes"; fi
  echo "opcache:    $(for s in "${RUN_SERVERS[@]}"; do printf '%s=%s ' "${LABEL[$s]}" "${OPCACHE[$s]}"; done)"
  echo "extensions: $(extensions_line)"
  echo "load avg:   $LOAD_BEFORE (1/5/15 min) before the run"
} | tee "$RUN_DIR/info.txt" >&2

TSV_HEADER="run_id	git	host	server	endpoint	conns	threads	duration_s	requests	rps	p50_ms	p99_ms	cpu_ticks	clk_tck	cpu_us_per_req	non2xx	socket_errors"
RUN_TSV=$RUN_DIR/results.tsv
ALL_TSV=$RESULTS_DIR/results.tsv
echo "$TSV_HEADER" >"$RUN_TSV"
[[ -s $ALL_TSV ]] || echo "$TSV_HEADER" >"$ALL_TSV"

n_eps=$(wc -w <<<"$ENDPOINTS"); n_conns=$(wc -w <<<"$CONNS")
total=$((${#RUN_SERVERS[@]} * n_eps * n_conns)); done_runs=0
MIX_SERVERS=()
for s in "${RUN_SERVERS[@]}"; do if slowmix_wanted "$s"; then MIX_SERVERS+=("$s"); fi; done
log "$total runs + ${#MIX_SERVERS[@]} slow-mix runs, about $(((total + ${#MIX_SERVERS[@]}) * (WARMUP + DURATION + 1))) s"

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

# ---------------------------------------------------------------- slow mix
# One wrk per server, SLOWMIX_CONNS threads with one connection each (the
# script times requests itself and needs that), SLOW_PCT % /slow.php.
MIX_TSV_HEADER="run_id	git	host	server	conns	duration_s	slow_pct	requests	rps	fast_requests	fast_p50_ms	fast_p99_ms	fast_max_ms	slow_requests	slow_p50_ms	slow_p99_ms	all_p99_ms	non2xx	socket_errors"
MIX_RUN_TSV=$RUN_DIR/slowmix.tsv
MIX_ALL_TSV=$RESULTS_DIR/slowmix.tsv
if ((${#MIX_SERVERS[@]})); then
  echo "$MIX_TSV_HEADER" >"$MIX_RUN_TSV"
  [[ -s $MIX_ALL_TSV ]] || echo "$MIX_TSV_HEADER" >"$MIX_ALL_TSV"
fi
mix_done=0
for s in "${MIX_SERVERS[@]}"; do
  mix_done=$((mix_done + 1))
  url="http://127.0.0.1:${PORT[$s]}/"
  log "[slow mix $mix_done/${#MIX_SERVERS[@]}] ${LABEL[$s]} ${SLOW_PCT}% /slow.php + /hello.php c=$SLOWMIX_CONNS"
  out=$RUN_DIR/wrk.$s.slowmix.c$SLOWMIX_CONNS.txt
  if ((WARMUP > 0)); then
    run_wrk /dev/null -t"$SLOWMIX_CONNS" -c"$SLOWMIX_CONNS" -d"${WARMUP}s" --timeout "${WRK_TIMEOUT}s" \
      -s "$BENCH_DIR/slowmix.lua" "$url" || true
  fi
  run_wrk "$out" -t"$SLOWMIX_CONNS" -c"$SLOWMIX_CONNS" -d"${DURATION}s" --timeout "${WRK_TIMEOUT}s" \
    --latency -s "$BENCH_DIR/slowmix.lua" "$url" || { cat "$out" >&2; die "wrk (slow mix) failed against $url"; }
  roots_alive "$s" || { show_logs "$s"; die "${LABEL[$s]} died during the slow-mix run"; }
  parsed=$(parse_wrk <"$out") || { cat "$out" >&2; die "could not parse wrk output ($out)"; }
  read -r req rps _ p99 non2xx serr <<<"$parsed"
  if ! grep -q '^slowmix fast ' "$out" || ! grep -q '^slowmix slow ' "$out"; then
    cat "$out" >&2; die "no 'slowmix' lines in $out (bench/slowmix.lua failed?)"
  fi
  read -r _ _ fn fp50 fp99 fmax <<<"$(grep '^slowmix fast ' "$out")"
  read -r _ _ sn sp50 sp99 _ <<<"$(grep '^slowmix slow ' "$out")"
  row="$RUN_ID	$GIT_REV	$HOST	$s	$SLOWMIX_CONNS	$DURATION	$SLOW_PCT	$req	$rps	$fn	$fp50	$fp99	$fmax	$sn	$sp50	$sp99	$p99	$non2xx	$serr"
  echo "$row" >>"$MIX_RUN_TSV"
  echo "$row" >>"$MIX_ALL_TSV"
  printf '    %s req/s (%s fast, %s slow), fast p99 %s ms, slow p99 %s ms%s\n' "$rps" "$fn" "$sn" "$fp99" "$sp99" \
    "$( ((non2xx + serr)) && echo ", ERRORS: non-2xx=$non2xx socket=$serr" )" >&2
  sleep 1
done

# ---------------------------------------------------------------- report
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load avg:   $LOAD_AFTER (1/5/15 min) after the run" | tee -a "$RUN_DIR/info.txt" >&2

# Full table: one row per measurement.
awk -F'\t' -v labels="$LABELS_KV" '
  BEGIN { nl = split(labels, kv, " "); for (i = 1; i <= nl; i++) { split(kv[i], a, "="); lab[a[1]] = a[2] } }
  NR == 1 { next }
  {
    n++; ep[n] = $5; c[n] = $6; sv[n] = $4; rps[n] = $10; p99[n] = $12; cpu[n] = $15
    err[n] = ($16 + $17) ? sprintf("non-2xx %d, socket %d", $16, $17) : "0"
    if ($4 == "nginx") base[$5 SUBSEP $6] = $10
  }
  END {
    print "| endpoint | conns | server | req/s | p99 | CPU µs/req | req/s vs nginx | errors |"
    print "|---|---:|---|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
      b = base[ep[i] SUBSEP c[i]]
      ratio = (b > 0) ? sprintf("%.2f", rps[i] / b) : "-"
      printf "| /%s | %d | %s | %.0f | %.2f ms | %.1f | %s | %s |\n", ep[i], c[i], lab[sv[i]], rps[i], p99[i], cpu[i], ratio, err[i]
    }
  }' "$RUN_TSV" >"$RUN_DIR/table.md"

# Compact table: one row per endpoint x connection count, one column per
# server: "req/s · p99 · CPU µs/req · req/s vs nginx+php-fpm".
{
  echo
  echo "Compact: req/s · p99 (ms) · CPU µs/req · req/s vs ${LABEL[nginx]} (errors, if any, in the table above)."
  echo
  awk -F'\t' -v labels="$LABELS_KV" -v order="${RUN_SERVERS[*]}" '
    BEGIN {
      nl = split(labels, kv, " "); for (i = 1; i <= nl; i++) { split(kv[i], a, "="); lab[a[1]] = a[2] }
      ns = split(order, srv, " ")
    }
    NR == 1 { next }
    {
      k = $5 SUBSEP $6
      if (!(k in seen)) { seen[k] = 1; nk++; key[nk] = k; kep[nk] = $5; kc[nk] = $6 }
      rps[k, $4] = $10; p99[k, $4] = $12; cpu[k, $4] = $15; have[k, $4] = 1
      if ($4 == "nginx") base[k] = $10
    }
    END {
      h = "| endpoint | conns |"; sep = "|---|---:|"
      for (j = 1; j <= ns; j++) { h = h " " lab[srv[j]] " |"; sep = sep "---|" }
      print h; print sep
      for (i = 1; i <= nk; i++) {
        k = key[i]; line = sprintf("| /%s | %d |", kep[i], kc[i])
        for (j = 1; j <= ns; j++) {
          s = srv[j]
          if (!have[k, s]) { line = line " - |"; continue }
          cell = sprintf("%.0f · %.2f · %.1f", rps[k, s], p99[k, s], cpu[k, s])
          if (s != "nginx" && base[k] > 0) cell = cell sprintf(" · %.2fx", rps[k, s] / base[k])
          line = line " " cell " |"
        }
        print line
      }
    }' "$RUN_TSV"
} >>"$RUN_DIR/table.md"

if [[ -s $MIX_RUN_TSV ]]; then
  {
    echo
    echo "Slow mix: ${SLOW_PCT}% of requests /slow.php (usleep 50 ms), the rest /hello.php; $SLOWMIX_CONNS connections (wrk -t$SLOWMIX_CONNS -c$SLOWMIX_CONNS -s bench/slowmix.lua), ${DURATION}s."
    echo
    awk -F'\t' -v labels="$LABELS_KV" '
      BEGIN { nl = split(labels, kv, " "); for (i = 1; i <= nl; i++) { split(kv[i], a, "="); lab[a[1]] = a[2] } }
      NR == 1 { next }
      {
        n++; sv[n] = $4; rps[n] = $9; fn[n] = $10; fp50[n] = $11; fp99[n] = $12; sn[n] = $14; sp99[n] = $16
        share[n] = ($10 + $14) ? 100 * $14 / ($10 + $14) : 0
        err[n] = ($18 + $19) ? sprintf("non-2xx %d, socket %d", $18, $19) : "0"
        if ($4 == "nginx") base = $12
      }
      END {
        print "| server | req/s (all) | slow share | fast p50 | fast p99 | slow p99 | fast p99 vs nginx | errors |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= n; i++) {
          ratio = (base > 0) ? sprintf("%.2f", fp99[i] / base) : "-"
          printf "| %s | %.0f | %.1f%% | %.2f ms | %.2f ms | %.2f ms | %s | %s |\n", lab[sv[i]], rps[i], share[i], fp50[i], fp99[i], sp99[i], ratio, err[i]
        }
      }' "$MIX_RUN_TSV"
  } >>"$RUN_DIR/table.md"
fi
printf '\nLoad average (1/5/15 min): %s before, %s after the run.\n' "$LOAD_BEFORE" "$LOAD_AFTER" >>"$RUN_DIR/table.md"

echo
cat "$RUN_DIR/table.md"
echo
log "raw results: $RUN_DIR/ (wrk output, configs, table.md); appended to $ALL_TSV"
