# shellcheck shell=bash
# Shared by bench/run.sh (HTTP/1.1, wrk) and bench/h2.sh (HTTP/2 and TLS,
# h2load): process bookkeeping, clean-up, and the nginx + php-fpm set-up.
# Sourced, never run. The sourcing script sets BENCH_DIR, APP_DIR, the
# LABEL map (server -> name in reports) and the settings used below
# (START_TIMEOUT, NGINX_BIN, PHP_FPM_BIN, NGINX_WORKERS, FPM_CHILDREN,
# FPM_INI_SCAN_DIR); TMP, RUN_DIR and RUN_SERVERS once it knows them.
#
# Nothing outside a private temp dir is configured or touched: nginx and
# php-fpm are Debian's binaries run with generated configs (-p/-c, -y/-c).

BENCH_SCRIPT=bench/$(basename "$0")   # names the generator in generated files

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

TMP=""
STARTED=()            # root pids of every server process this script started
declare -A ROOTS=()   # server -> space separated root pids (CPU accounting)
declare -A LOGS=()    # server -> log files to show when it fails
declare -A PORT=()    # server -> port

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
  if [[ -n $LOAD_PID ]]; then kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; fi
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

# The load generator (wrk, h2load, ...) runs in the background so that a
# signal to this script acts at once: run_load OUTFILE COMMAND [ARGS...].
LOAD_PID=""
run_load() {
  local out=$1 rc=0; shift
  "$@" >"$out" 2>&1 &
  LOAD_PID=$!
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=""
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
  [[ $sid == "$BG_PID" ]] || die "could not start $1 in its own session (is job control on? run $BENCH_SCRIPT as a script)"
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

# wait_answer SERVER URL [CURL ARGS...]: wait until the server answers URL at
# all (any status), or fail clearly.
wait_answer() {
  local server=$1 url=$2 deadline=$((SECONDS + START_TIMEOUT)) code
  shift 2
  while :; do
    if ! roots_alive "$server"; then
      show_logs "$server"
      die "${LABEL[$server]} exited during startup (logs above)"
    fi
    code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$@" "$url" 2>/dev/null || true)
    [[ -n $code && $code != 000 ]] && return 0
    if ((SECONDS >= deadline)); then
      show_logs "$server"
      die "${LABEL[$server]} did not answer on $url within ${START_TIMEOUT}s (logs above)"
    fi
    sleep 0.2
  done
}

# Load generators and servers want a few hundred descriptors each.
raise_nofile() {
  local hard
  hard=$(ulimit -Hn)
  if [[ $hard == unlimited ]]; then ulimit -n 65536 2>/dev/null || true
  else ulimit -n "$hard" 2>/dev/null || true; fi
}

# ---------------------------------------------------------------- PHP probes
# probe_php SERVER BASE_URL [CURL ARGS...]: whether OPcache is active
# (app/opcache.php) and which extensions are loaded (app/extensions.php),
# into OPCACHE[SERVER] and EXTS[SERVER]. Neither probe is benchmarked.
declare -A OPCACHE=() EXTS=()
probe_php() {
  local server=$1 base=$2
  shift 2
  OPCACHE[$server]=$(curl -s --max-time 5 "$@" "$base/opcache.php" || true)
  [[ ${OPCACHE[$server]} == on || ${OPCACHE[$server]} == off ]] || OPCACHE[$server]="unknown"
  # "<extensions> <zend extensions> <names,...>" (app/extensions.php)
  EXTS[$server]=$(curl -s --max-time 5 "$@" "$base/extensions.php" || true)
  [[ ${EXTS[$server]} =~ ^[0-9]+\ [0-9]+\  ]] || EXTS[$server]="? ? "
}

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

# ---------------------------------------------------------------- nginx + php-fpm
# Unprivileged user for nginx/php-fpm workers when we are root: sets RUN_AS
# (empty when not root). FILE is one they must be able to read.
choose_run_as() {
  local file=$1 u
  RUN_AS=""
  ((EUID == 0)) || return 0
  for u in www-data nobody; do
    if id "$u" >/dev/null 2>&1 && runuser -u "$u" -- test -r "$file" 2>/dev/null; then
      RUN_AS=$u; return 0
    fi
  done
  RUN_AS=root   # app dir not readable by www-data/nobody
}

# Writes $TMP/php.ini and $TMP/php-fpm.conf (pool listening on FPM_SOCK).
FPM_SOCK=""
fpm_write_config() {
  local pool_user=""
  FPM_SOCK=$TMP/php-fpm.sock
  [[ -n $RUN_AS ]] && pool_user="user = $RUN_AS"

  # OPcache is loaded here unless the scan dir loads it (Debian's 10-opcache.ini).
  local opcache_line="zend_extension = opcache.so"
  if [[ -n $FPM_INI_SCAN_DIR ]]; then
    [[ -d $FPM_INI_SCAN_DIR ]] || die "FPM_INI_SCAN_DIR=$FPM_INI_SCAN_DIR is not a directory"
    if grep -qsE '^[[:space:]]*zend_extension[[:space:]]*=[[:space:]]*"?opcache' "$FPM_INI_SCAN_DIR"/*.ini; then
      opcache_line="; zend_extension = opcache.so: loaded by $FPM_INI_SCAN_DIR"
    fi
  fi

  cat >"$TMP/php.ini" <<EOF
; generated by $BENCH_SCRIPT: Debian production defaults that matter here
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
; generated by $BENCH_SCRIPT
[global]
pid = $TMP/php-fpm.pid
error_log = $TMP/php-fpm.log
daemonize = no

[bench]
$pool_user
listen = $FPM_SOCK
listen.mode = 0666
pm = static
pm.max_children = $FPM_CHILDREN
pm.max_requests = 0
catch_workers_output = yes
EOF
}

# The part of nginx.conf before the server blocks, up to and including the
# common http settings; the caller appends its server blocks and the closing
# brace of http. DIR is nginx's prefix (-p), in the temp dir.
nginx_conf_head() {
  local d=$1 user_line=""
  [[ -n $RUN_AS ]] && user_line="user $RUN_AS;"
  cat <<EOF
# generated by $BENCH_SCRIPT
$user_line
${NGINX_MAIN_EXTRA:-}
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
EOF
}

# The location block that passes *.php to php-fpm (inside a server block).
nginx_php_location() {
  cat <<EOF
        location ~ \.php\$ {
            try_files \$uri =404;
            fastcgi_pass unix:$FPM_SOCK;
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
EOF
}

# Tests the configs written by fpm_write_config and the caller (DIR/nginx.conf),
# then starts php-fpm, waits for its socket, and starts nginx. Sets
# ROOTS[nginx] and LOGS[nginx]; the caller waits until nginx answers.
start_nginx_fpm() {
  local d=$1 fpm ngx i fpm_flags=()
  [[ $RUN_AS == root ]] && fpm_flags+=(-R)

  PHP_INI_SCAN_DIR=$FPM_INI_SCAN_DIR "$PHP_FPM_BIN" -t "${fpm_flags[@]}" -y "$TMP/php-fpm.conf" -c "$TMP/php.ini" >"$TMP/php-fpm-test.log" 2>&1 ||
    { cat "$TMP/php-fpm-test.log" >&2; die "php-fpm rejected its generated config $TMP/php-fpm.conf"; }
  "$NGINX_BIN" -t -p "$d" -c "$d/nginx.conf" >"$TMP/nginx-test.log" 2>&1 ||
    { cat "$TMP/nginx-test.log" >&2; die "nginx rejected its generated config $d/nginx.conf"; }

  start_bg "$TMP/php-fpm.stdout.log" env PHP_INI_SCAN_DIR="$FPM_INI_SCAN_DIR" \
    "$PHP_FPM_BIN" -F "${fpm_flags[@]}" -y "$TMP/php-fpm.conf" -c "$TMP/php.ini"
  fpm=$BG_PID
  ROOTS[nginx]=$fpm
  LOGS[nginx]="$TMP/php-fpm.log $TMP/php-fpm.stdout.log $TMP/nginx-error.log $TMP/nginx.stdout.log"
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    [[ -S $FPM_SOCK ]] && break
    roots_alive nginx || { show_logs nginx; die "php-fpm exited during startup (logs above)"; }
    sleep 0.1
  done
  [[ -S $FPM_SOCK ]] || { show_logs nginx; die "php-fpm did not create $FPM_SOCK within ${START_TIMEOUT}s"; }

  start_bg "$TMP/nginx.stdout.log" "$NGINX_BIN" -p "$d" -c "$d/nginx.conf"
  ngx=$BG_PID
  ROOTS[nginx]="$ngx $fpm"
}
