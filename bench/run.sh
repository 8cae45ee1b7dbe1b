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
# log, die, the process bookkeeping and clean-up (EXIT trap), run_load,
# start_bg, wait_answer, the PHP probes and the nginx + php-fpm set-up.
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

declare -A LABEL=([nginx]="nginx+php-fpm" [tusk]="tusk-pooled" [tusk-direct]="tusk-direct"
  [tusk-worker-pooled]="tusk-worker-pooled" [tusk-worker-direct]="tusk-worker-direct" [workerman]="workerman")
declare -A PORTVAR=([nginx]=NGINX_PORT [tusk]=TUSK_PORT [tusk-direct]=TUSK_DIRECT_PORT
  [tusk-worker-pooled]=TUSK_WORKER_PORT [tusk-worker-direct]=TUSK_WORKER_DIRECT_PORT [workerman]=WORKERMAN_PORT)
TUSK_SERVERS="tusk tusk-direct tusk-worker-pooled tusk-worker-direct"
# "server=label ..." for the awk report scripts
LABELS_KV=$(for k in "${!LABEL[@]}"; do printf '%s=%s ' "$k" "${LABEL[$k]}"; done)

# wrk runs in the background (run_load) so that a signal to this script acts at once.
run_wrk() { local out=$1; shift; run_load "$out" wrk "$@"; }

# Wait until the server answers HTTP at all (any status), or fail clearly.
wait_up() { wait_answer "$1" "http://127.0.0.1:${PORT[$1]}/hello.php"; }

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
  probe_php "$server" "http://127.0.0.1:${PORT[$server]}"
  log "${LABEL[$server]}: all endpoints OK (opcache: ${OPCACHE[$server]}, extensions: ${EXTS[$server]%% *})"
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

raise_nofile

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
choose_run_as "$APP_DIR/static/4k.txt"

# ---------------------------------------------------------------- nginx + php-fpm
start_nginx() {
  local d=$TMP/nginx
  mkdir -p "$d"
  fpm_write_config
  {
    nginx_conf_head "$d"
    cat <<EOF

    server {
        listen 127.0.0.1:$NGINX_PORT default_server;
        server_name _;
        root $APP_DIR;

        location / {
            try_files \$uri =404;
        }

EOF
    nginx_php_location
    printf '    }\n}\n'
  } >"$d/nginx.conf"
  start_nginx_fpm "$d"
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
