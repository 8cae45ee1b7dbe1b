#!/usr/bin/env bash
# HTTP/2 and TLS benchmark: Tusk (pooled and direct mode) vs nginx +
# php-fpm, both speaking HTTP/2 over TLS (h2, ALPN) and cleartext HTTP/2
# with prior knowledge (h2c), with the same self-signed certificate, the
# same fixtures and h2load; then new and resumed TLS handshakes per second.
# See bench/README.md ("HTTP/2 and TLS").
#
#   bench/h2.sh                          # full run, 10 s per measurement
#   DURATION=3 bench/h2.sh               # quick run
#   SERVERS="nginx tusk" PROTOS=h2 HANDSHAKES= bench/h2.sh
#   ACCEPT_ENCODING="gzip, deflate, br, zstd" ENDPOINTS=page.php HANDSHAKES= bench/h2.sh
#                                        # as a browser asks (nginx: brotli if installed)
#
# Nothing outside a private temp dir is configured or touched: nginx and
# php-fpm are Debian's binaries run with generated configs (-p/-c, -y/-c).
# The one file written in the repository is the static fixture
# bench/app/static/page.html (+ .gz), generated from bench/app/page.php.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
APP_DIR=$BENCH_DIR/app

# ---------------------------------------------------------------- settings
DURATION=${DURATION:-10}              # seconds per measured h2load run
WARMUP=${WARMUP:-2}                   # seconds of unmeasured load before each run
H2LOAD_THREADS=${H2LOAD_THREADS:-1}   # h2load -t
H2LOAD_CLIENTS=${H2LOAD_CLIENTS:-32}  # h2load -c: connections
H2LOAD_STREAMS=${H2LOAD_STREAMS:-10}  # h2load -m: concurrent streams per connection
ACCEPT_ENCODING=${ACCEPT_ENCODING:-gzip}  # sent with every request (checks and load)
ENDPOINTS=${ENDPOINTS:-"hello.php page.php static/page.html"}
PROTOS=${PROTOS:-"h2 h2c"}
SERVERS=${SERVERS:-"nginx tusk tusk-direct"}
HANDSHAKES=${HANDSHAKES-"full resume"}  # TLS handshake runs; empty = none
HS_THREADS=${HS_THREADS:-8}           # blocking client threads of bench/tls_handshakes.c
HS_DURATION=${HS_DURATION:-$DURATION}
START_TIMEOUT=${START_TIMEOUT:-20}    # seconds a server gets to answer

# Two ports per server: cleartext h2c (prior knowledge) and TLS (h2 by ALPN).
NGINX_PORT=${NGINX_PORT:-18180}
NGINX_TLS_PORT=${NGINX_TLS_PORT:-18480}
TUSK_PORT=${TUSK_PORT:-18181}                 # tusk --mode pooled
TUSK_TLS_PORT=${TUSK_TLS_PORT:-18481}
TUSK_DIRECT_PORT=${TUSK_DIRECT_PORT:-18183}   # tusk --mode direct
TUSK_DIRECT_TLS_PORT=${TUSK_DIRECT_TLS_PORT:-18483}

NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
PHP_FPM_BIN=${PHP_FPM_BIN:-/usr/sbin/php-fpm8.2}
PHP_CLI_BIN=${PHP_CLI_BIN:-/usr/bin/php8.2}
NGINX_WORKERS=${NGINX_WORKERS:-2}     # = "auto" on the 2-core reference machine
FPM_CHILDREN=${FPM_CHILDREN:-4}
FPM_INI_SCAN_DIR=${FPM_INI_SCAN_DIR-/etc/php/8.2/fpm/conf.d}   # as in run.sh
# nginx's gzip_comp_level for PHP output: Tusk's gzip level (src/http/compress.h).
NGINX_GZIP_LEVEL=${NGINX_GZIP_LEVEL:-5}
# Debian's brotli filter for nginx (libnginx-mod-http-brotli-filter), loaded
# when present, at Tusk's brotli level: used when the client accepts br.
NGINX_BROTLI_MODULE=${NGINX_BROTLI_MODULE:-/usr/lib/nginx/modules/ngx_http_brotli_filter_module.so}
NGINX_BROTLI_LEVEL=${NGINX_BROTLI_LEVEL:-4}

TUSK_BIN=${TUSK_BIN:-$REPO_DIR/build/tusk}
TUSK_WORKERS=${TUSK_WORKERS:-2}
TUSK_ARGS=${TUSK_ARGS:-}

CC=${CC:-cc}                          # builds bench/tls_handshakes.c into the temp dir
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}

# ---------------------------------------------------------------- helpers
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

declare -A LABEL=([nginx]="nginx+php-fpm" [tusk]="tusk-pooled" [tusk-direct]="tusk-direct")
declare -A PORTVAR=([nginx]=NGINX_PORT [tusk]=TUSK_PORT [tusk-direct]=TUSK_DIRECT_PORT)
declare -A TLS_PORTVAR=([nginx]=NGINX_TLS_PORT [tusk]=TUSK_TLS_PORT [tusk-direct]=TUSK_DIRECT_TLS_PORT)
declare -A TLS_PORT=()   # server -> TLS port (PORT[server] is the h2c one)
TUSK_SERVERS="tusk tusk-direct"
LABELS_KV=$(for k in "${!LABEL[@]}"; do printf '%s=%s ' "$k" "${LABEL[$k]}"; done)

# url SERVER PROTO PATH
url() {
  if [[ $2 == h2 ]]; then echo "https://127.0.0.1:${TLS_PORT[$1]}/$3"
  else echo "http://127.0.0.1:${PORT[$1]}/$3"; fi
}
# curl's options for PROTO: HTTP/2 only (no HTTP/1.1 fallback), any certificate.
curl_h2() {
  if [[ $1 == h2 ]]; then echo "--http2 -k"; else echo "--http2-prior-knowledge"; fi
}

# Wait until both ports answer.
wait_up() {
  # shellcheck disable=SC2046
  wait_answer "$1" "$(url "$1" h2c hello.php)" $(curl_h2 h2c)
  # shellcheck disable=SC2046
  wait_answer "$1" "$(url "$1" h2 hello.php)" $(curl_h2 h2)
}

# Every endpoint over both protocols: 200 over HTTP/2, the expected bytes
# once decoded, encoded when large and the client accepts an encoding (both
# servers compress text/html above a few hundred bytes), and for the static
# file served gzip-encoded exactly the bytes of its precompressed .gz
# sibling (no compression on the fly). Also records
# what TLS negotiated (h2load -n1) and the PHP probes.
declare -A TLS_INFO=() ENC_INFO=()
check_endpoints() {
  local server=$1 proto ep code ver enc got hdr u want_gz
  got=$TMP/got.$server.body; hdr=$TMP/got.$server.head
  for proto in h2 h2c; do
    for ep in $ENDPOINTS; do
      u=$(url "$server" "$proto" "$ep")
      # shellcheck disable=SC2046
      read -r code ver < <(curl -s $(curl_h2 "$proto") -H "Accept-Encoding: $ACCEPT_ENCODING" -D "$hdr" -o "$got" \
        --max-time 5 -w '%{http_code} %{http_version}\n' "$u" || echo "000 0")
      if [[ $code != 200 || $ver != 2 ]]; then
        show_logs "$server"
        die "${LABEL[$server]}: GET $u returned HTTP ${code:-nothing} over HTTP/${ver:-?}, expected 200 over HTTP/2"
      fi
      enc=$(awk -F': *' 'tolower($1) == "content-encoding" { v = tolower($2); sub(/\r$/, "", v); print v }' "$hdr")
      want_gz=0
      [[ $ACCEPT_ENCODING =~ gzip|br|zstd && $(wc -c <"$TMP/expect/$ep") -ge 1024 ]] && want_gz=1
      if ((want_gz)) && [[ -z $enc ]]; then
        die "${LABEL[$server]}: GET $u (Accept-Encoding: $ACCEPT_ENCODING) was not encoded"
      fi
      if [[ $enc == gzip ]]; then
        gzip -dc <"$got" >"$got.plain" 2>/dev/null || die "${LABEL[$server]}: GET $u: the gzip body does not decode"
      elif [[ $enc == zstd ]]; then
        zstd -dcq <"$got" >"$got.plain" 2>/dev/null || die "${LABEL[$server]}: GET $u: the zstd body does not decode (zstd installed?)"
      elif [[ $enc == br ]]; then
        brotli -dc <"$got" >"$got.plain" 2>/dev/null || die "${LABEL[$server]}: GET $u: the br body does not decode (apt install brotli)"
      elif [[ -z $enc ]]; then
        cp "$got" "$got.plain"
      else
        die "${LABEL[$server]}: GET $u: unexpected Content-Encoding: $enc"
      fi
      if ! cmp -s "$got.plain" "$TMP/expect/$ep"; then
        printf 'expected (first 200 bytes): %s\ngot      (first 200 bytes): %s\n' \
          "$(head -c 200 "$TMP/expect/$ep")" "$(head -c 200 "$got.plain")" >&2
        die "${LABEL[$server]}: GET $u returned 200 but an unexpected body ($(wc -c <"$got.plain") bytes decoded, expected $(wc -c <"$TMP/expect/$ep"))"
      fi
      if [[ $ep == static/* && $enc == gzip ]] && ! cmp -s "$got" "$APP_DIR/$ep.gz"; then
        die "${LABEL[$server]}: GET $u was compressed on the fly, not served from $APP_DIR/$ep.gz"
      fi
      [[ $proto == h2 ]] && ENC_INFO[$server]+="${ENC_INFO[$server]:+, }/$ep ${enc:-identity} $(wc -c <"$got") B"
    done
  done
  # h2load must get through too; its report says what TLS negotiated.
  for proto in h2 h2c; do
    u=$(url "$server" "$proto" hello.php)
    h2load -n1 -c1 -H "accept-encoding: $ACCEPT_ENCODING" "$u" >"$TMP/h2load-check.txt" 2>&1 || true
    grep -q ' 1 succeeded' "$TMP/h2load-check.txt" ||
      { cat "$TMP/h2load-check.txt" >&2; show_logs "$server"; die "${LABEL[$server]}: h2load could not GET $u"; }
    if [[ $proto == h2 ]]; then
      TLS_INFO[$server]=$(awk -F': *' '
        /^TLS Protocol:/ { p = $2 } /^Cipher:/ { c = $2 } /^Server Temp Key:/ { k = $2 }
        /^Application protocol:/ { a = $2 }
        END { printf "%s %s %s, ALPN %s", p, c, k, a }' "$TMP/h2load-check.txt")
    fi
  done
  # shellcheck disable=SC2046
  probe_php "$server" "http://127.0.0.1:${PORT[$server]}" $(curl_h2 h2c)
  log "${LABEL[$server]}: all endpoints OK over h2 and h2c (${TLS_INFO[$server]}; opcache: ${OPCACHE[$server]}, extensions: ${EXTS[$server]%% *})"
}

# h2load output -> "done succeeded failed errored timeout rps non2xx data_bytes mean_ms"
parse_h2load() {
  awk '
    function ms(v,   n, u) {
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n / 1000
      if (u == "ms") return n
      if (u == "s")  return n * 1000
      return n
    }
    /^finished in / { rps = $4 }
    /^requests: / {
      for (i = 2; i < NF; i++) {
        v = $i + 0; w = $(i + 1); gsub(/,/, "", w)
        if (w == "done") done = v; else if (w == "succeeded") ok = v
        else if (w == "failed") failed = v; else if (w == "errored") errored = v
        else if (w == "timeout") timeout = v
      }
    }
    /^status codes: / { non2xx = $5 + $7 + $9 }
    /^traffic: / { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^data/) { d = $i; gsub(/[()]/, "", d); data = d } }
    /^time for request:/ { mean = ms($6) }
    END {
      if (rps == "" || done == "") exit 1
      # %.0f: data passes 2^31 bytes in one run (mawk clamps %d there)
      printf "%d %d %d %d %d %.2f %d %.0f %.3f\n", done, ok, failed, errored, timeout, rps, non2xx, data, mean
    }'
}

# p50 and p99 response time (ms) of the successful requests in an h2load
# --log-file ("start_us status duration_us"; status -1 = failed).
log_percentiles() {
  awk -F'\t' '$2 != -1 { print $3 }' "$1" | sort -n | awk '
    { a[NR] = $1 }
    END {
      if (NR == 0) { print "0 0"; exit }
      i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
      i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
      printf "%.3f %.3f\n", a[i50] / 1000, a[i99] / 1000
    }'
}

# ---------------------------------------------------------------- preflight
for tool in h2load curl gzip setsid openssl "$CC" "$NGINX_BIN" "$PHP_FPM_BIN" "$PHP_CLI_BIN"; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found (install the benchmark packages: scripts/install-deps.sh --bench)"
done
[[ -f $APP_DIR/hello.php && -f $APP_DIR/page.php && -f $APP_DIR/opcache.php && -f $APP_DIR/extensions.php &&
   -f $BENCH_DIR/tls_handshakes.c ]] || die "fixtures missing under $APP_DIR"
for p in $PROTOS; do [[ $p == h2 || $p == h2c ]] || die "unknown protocol $p in PROTOS (known: h2 h2c)"; done
for m in $HANDSHAKES; do [[ $m == full || $m == resume ]] || die "unknown mode $m in HANDSHAKES (known: full resume)"; done

raise_nofile

want() { [[ " $SERVERS " == *" $1 "* ]]; }
RUN_SERVERS=()
if want nginx; then RUN_SERVERS+=(nginx); fi
wanted_tusk=()
for s in $TUSK_SERVERS; do if want "$s"; then wanted_tusk+=("$s"); fi; done
case $TUSK_BIN in /*) ;; *) TUSK_BIN=$PWD/$TUSK_BIN ;; esac
if ((${#wanted_tusk[@]})); then
  if [[ ! -e $TUSK_BIN ]]; then
    log "tusk binary not found at $TUSK_BIN, skipping (build it, or set TUSK_BIN)"
  elif [[ ! -x $TUSK_BIN ]]; then
    die "tusk binary at $TUSK_BIN is not executable"
  else
    RUN_SERVERS+=("${wanted_tusk[@]}")
  fi
fi
((${#RUN_SERVERS[@]})) || die "no server to benchmark (SERVERS=$SERVERS)"

TMP=$(mktemp -d /tmp/tusk-bench-h2.XXXXXX)
chmod 755 "$TMP"   # nginx/php-fpm workers run unprivileged and need the socket path

RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
RUN_DIR=$RESULTS_DIR/$RUN_ID
mkdir -p "$RUN_DIR"

# Expected bodies, and the static fixture: page.php's output as a file,
# with a gzip -9 sibling written after it (Tusk uses a sibling that is not
# older than the file; nginx's gzip_static does not look at times).
mkdir -p "$TMP/expect/static"
printf 'Hello, World!' >"$TMP/expect/hello.php"
"$PHP_CLI_BIN" -n "$APP_DIR/page.php" >"$TMP/expect/page.php"
cp "$TMP/expect/page.php" "$TMP/expect/static/page.html"
page=$APP_DIR/static/page.html
if ! cmp -s "$TMP/expect/page.php" "$page"; then
  { cp "$TMP/expect/page.php" "$page.tmp" && mv "$page.tmp" "$page"; } || die "cannot write $page"
fi
{ gzip -9 -n -c "$page" >"$page.gz.tmp" && mv "$page.gz.tmp" "$page.gz"; } || die "cannot write $page.gz"
for ep in $ENDPOINTS; do
  [[ -f $TMP/expect/$ep ]] || die "unknown endpoint $ep (known: hello.php page.php static/page.html)"
done

for s in "${RUN_SERVERS[@]}"; do
  PORT[$s]=${!PORTVAR[$s]}
  TLS_PORT[$s]=${!TLS_PORTVAR[$s]}
  if port_busy "${PORT[$s]}"; then die "port ${PORT[$s]} (for ${LABEL[$s]}) is already in use; set ${PORTVAR[$s]}"; fi
  if port_busy "${TLS_PORT[$s]}"; then die "port ${TLS_PORT[$s]} (for ${LABEL[$s]}) is already in use; set ${TLS_PORTVAR[$s]}"; fi
done

# One self-signed certificate (EC P-256, for localhost and 127.0.0.1) for
# every server: Tusk's own `tusk cert`, or the same with openssl.
CERT=$TMP/cert/localhost.pem
KEY=$TMP/cert/localhost-key.pem
if [[ -x $TUSK_BIN ]]; then
  "$TUSK_BIN" cert "$TMP/cert" >"$TMP/cert.log" 2>&1 || { cat "$TMP/cert.log" >&2; die "$TUSK_BIN cert failed"; }
  CERT_HOW="$TUSK_BIN cert"
else
  mkdir -p "$TMP/cert"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$KEY" -out "$CERT" >"$TMP/cert.log" 2>&1 ||
    { cat "$TMP/cert.log" >&2; die "openssl req failed"; }
  CERT_HOW="openssl req (EC P-256)"
fi
[[ -s $CERT && -s $KEY ]] || die "no certificate in $TMP/cert"
cp "$CERT" "$RUN_DIR/cert.pem"

# The handshake client: our own, built here (nothing is installed).
HS_BIN=""
if [[ -n $HANDSHAKES ]]; then
  HS_BIN=$TMP/tls_handshakes
  "$CC" -O2 -Wall -o "$HS_BIN" "$BENCH_DIR/tls_handshakes.c" -lssl -lcrypto -pthread >"$TMP/cc.log" 2>&1 ||
    { cat "$TMP/cc.log" >&2; die "could not build bench/tls_handshakes.c (needs libssl-dev)"; }
fi

# Unprivileged user for nginx/php-fpm workers when we are root.
choose_run_as "$APP_DIR/page.php"

# ---------------------------------------------------------------- nginx + php-fpm
# As in run.sh (same php-fpm pool, php.ini, fastcgi_params and http
# settings), plus: TLS with the shared certificate and HTTP/2 on one port,
# h2c (prior knowledge) on another, gzip for PHP output at Tusk's level,
# gzip_static for the precompressed static file.
start_nginx() {
  local d=$TMP/nginx
  mkdir -p "$d"
  NGINX_BROTLI_CONF=""
  NGINX_MAIN_EXTRA=""
  local static_br=""
  if [[ -f $NGINX_BROTLI_MODULE ]]; then
    # For PHP output only: static files come from their .gz sibling, as in Tusk.
    NGINX_MAIN_EXTRA="load_module $NGINX_BROTLI_MODULE;"
    NGINX_BROTLI_CONF="    brotli on;
    brotli_comp_level $NGINX_BROTLI_LEVEL;"
    static_br="brotli off;"
  fi
  fpm_write_config
  {
    nginx_conf_head "$d"
    cat <<EOF

    # text/html is always compressed; level as Tusk's gzip level
    gzip on;
    gzip_comp_level $NGINX_GZIP_LEVEL;
    gzip_vary on;
    gzip_static on;
$NGINX_BROTLI_CONF

    ssl_certificate     $CERT;
    ssl_certificate_key $KEY;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;

    server {
        listen 127.0.0.1:$NGINX_TLS_PORT ssl http2 default_server;
        listen 127.0.0.1:$NGINX_PORT http2 default_server;
        server_name _;
        root $APP_DIR;

        location / {
            try_files \$uri =404;
            $static_br
        }

EOF
    nginx_php_location
    printf '    }\n}\n'
  } >"$d/nginx.conf"
  start_nginx_fpm "$d"
  wait_up nginx
  log "nginx ($NGINX_WORKERS workers) + php-fpm (pm=static, $FPM_CHILDREN children): h2 on 127.0.0.1:$NGINX_TLS_PORT, h2c on 127.0.0.1:$NGINX_PORT"
}

# ---------------------------------------------------------------- tusk
declare -A TUSK_CMD=()
start_tusk_mode() {
  local server=$1 mode=$2 extra=()
  read -r -a extra <<<"$TUSK_ARGS"
  local cmd=("$TUSK_BIN" serve "$APP_DIR" --listen "127.0.0.1:${PORT[$server]}" --tls-listen "127.0.0.1:${TLS_PORT[$server]}"
    --tls-cert "$CERT" --tls-key "$KEY" --workers "$TUSK_WORKERS" --mode "$mode" "${extra[@]}")
  TUSK_CMD[$server]="${cmd[*]}"
  log "starting: ${cmd[*]}"
  start_bg "$TMP/$server.log" "${cmd[@]}"
  ROOTS[$server]=$BG_PID
  LOGS[$server]="$TMP/$server.log"
  wait_up "$server"
  log "${LABEL[$server]} ($TUSK_WORKERS workers, --mode $mode): h2 on 127.0.0.1:${TLS_PORT[$server]}, h2c on 127.0.0.1:${PORT[$server]}"
}
start_tusk() { start_tusk_mode tusk pooled; }
start_tusk_direct() { start_tusk_mode tusk-direct direct; }

# ---------------------------------------------------------------- run
CLK_TCK=$(getconf CLK_TCK)
GIT_REV=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$REPO_DIR" status --porcelain --untracked-files=no 2>/dev/null) ]]; then GIT_REV+="+dirty"; fi
HOST=$(hostname 2>/dev/null || echo unknown)

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for s in "${RUN_SERVERS[@]}"; do "start_${s//-/_}"; done
for s in "${RUN_SERVERS[@]}"; do check_endpoints "$s"; done

cp "$TMP/php.ini" "$TMP/php-fpm.conf" "$RUN_DIR"/ 2>/dev/null || true
cp "$TMP/nginx/nginx.conf" "$RUN_DIR"/ 2>/dev/null || true

H2LOAD_ARGS=(-t"$H2LOAD_THREADS" -c"$H2LOAD_CLIENTS" -m"$H2LOAD_STREAMS" -H "accept-encoding: $ACCEPT_ENCODING")
{
  echo "run:        $RUN_ID (git $GIT_REV) on $HOST, $(nproc) CPUs, $(uname -sr)"
  echo "load:       $(h2load --version 2>&1 | head -n 1) -t$H2LOAD_THREADS -c$H2LOAD_CLIENTS -m$H2LOAD_STREAMS -H 'accept-encoding: $ACCEPT_ENCODING'; ${WARMUP}s warm-up run + ${DURATION}s measured run; protocols: $PROTOS"
  echo "handshakes: ${HANDSHAKES:-none}; bench/tls_handshakes.c -t$HS_THREADS, ${WARMUP}s warm-up + ${HS_DURATION}s measured"
  echo "cert:       $CERT_HOW: $(openssl x509 -in "$CERT" -noout -text | awk '/Public Key Algorithm/ { sub(/.*: /, ""); a = $0 } /NIST CURVE|ASN1 OID/ { sub(/.*: /, ""); c = $0 } END { print a, c }') self-signed, shared by all servers"
  echo "servers:    ${RUN_SERVERS[*]}"
  if [[ -n ${PORT[nginx]:-} ]]; then
    echo "nginx:      $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'), $NGINX_WORKERS workers, gzip_comp_level $NGINX_GZIP_LEVEL, gzip_static on$([[ -n $NGINX_MAIN_EXTRA ]] && echo ", brotli_comp_level $NGINX_BROTLI_LEVEL"); $("$PHP_FPM_BIN" -v | head -n 1 | cut -d'(' -f1)pm=static $FPM_CHILDREN children, PHP_INI_SCAN_DIR=${FPM_INI_SCAN_DIR:-<none>}"
  fi
  for s in $TUSK_SERVERS; do
    if [[ -n ${PORT[$s]:-} ]]; then printf '%-11s %s\n' "${LABEL[$s]}:" "${TUSK_CMD[$s]}"; fi
  done
  for s in "${RUN_SERVERS[@]}"; do printf '%-11s %s\n' "tls:" "${LABEL[$s]}: ${TLS_INFO[$s]}"; done
  for s in "${RUN_SERVERS[@]}"; do printf '%-11s %s\n' "encoding:" "${LABEL[$s]} (h2, Accept-Encoding: $ACCEPT_ENCODING): ${ENC_INFO[$s]}"; done
  echo "opcache:    $(for s in "${RUN_SERVERS[@]}"; do printf '%s=%s ' "${LABEL[$s]}" "${OPCACHE[$s]}"; done)"
  echo "extensions: $(extensions_line)"
  echo "load avg:   $LOAD_BEFORE (1/5/15 min) before the run"
} | tee "$RUN_DIR/info.txt" >&2

TSV_HEADER="run_id	git	host	server	proto	endpoint	clients	streams	duration_s	requests	rps	mean_ms	p50_ms	p99_ms	bytes_per_resp	cpu_ticks	clk_tck	cpu_us_per_req	failed	errored	timeout	non2xx"
RUN_TSV=$RUN_DIR/results.tsv
ALL_TSV=$RESULTS_DIR/h2-results.tsv
echo "$TSV_HEADER" >"$RUN_TSV"
[[ -s $ALL_TSV ]] || echo "$TSV_HEADER" >"$ALL_TSV"

HS_TSV_HEADER="run_id	git	host	server	mode	threads	duration_s	handshakes	rate	resumed	failed	p50_ms	p99_ms	cpu_ticks	clk_tck	cpu_us_per_handshake"
HS_RUN_TSV=$RUN_DIR/handshakes.tsv
HS_ALL_TSV=$RESULTS_DIR/h2-handshakes.tsv
if [[ -n $HANDSHAKES ]]; then
  echo "$HS_TSV_HEADER" >"$HS_RUN_TSV"
  [[ -s $HS_ALL_TSV ]] || echo "$HS_TSV_HEADER" >"$HS_ALL_TSV"
fi

n_eps=$(wc -w <<<"$ENDPOINTS"); n_protos=$(wc -w <<<"$PROTOS"); n_hs=$(wc -w <<<"$HANDSHAKES")
total=$((${#RUN_SERVERS[@]} * n_eps * n_protos)); done_runs=0
log "$total h2load runs + $((${#RUN_SERVERS[@]} * n_hs)) handshake runs, about $((total * (WARMUP + DURATION + 1) + ${#RUN_SERVERS[@]} * n_hs * (WARMUP + HS_DURATION + 1))) s"

for ep in $ENDPOINTS; do
  for proto in $PROTOS; do
    for s in "${RUN_SERVERS[@]}"; do
      done_runs=$((done_runs + 1))
      u=$(url "$s" "$proto" "$ep")
      log "[$done_runs/$total] ${LABEL[$s]} $proto /$ep"
      out=$RUN_DIR/h2load.$s.$proto.${ep//\//_}.txt
      if ((WARMUP > 0)); then
        run_load /dev/null h2load "${H2LOAD_ARGS[@]}" -D "$WARMUP" "$u" || true
      fi
      # shellcheck disable=SC2086
      t0=$(tree_ticks ${ROOTS[$s]})
      run_load "$out" h2load "${H2LOAD_ARGS[@]}" -D "$DURATION" --log-file="$TMP/h2load.log" "$u" ||
        { cat "$out" >&2; die "h2load failed against $u"; }
      # shellcheck disable=SC2086
      t1=$(tree_ticks ${ROOTS[$s]})
      roots_alive "$s" || { show_logs "$s"; die "${LABEL[$s]} died during the $proto /$ep run"; }
      parsed=$(parse_h2load <"$out") || { cat "$out" >&2; die "could not parse h2load output ($out)"; }
      read -r _ ok failed errored timeout rps non2xx data mean <<<"$parsed"
      read -r p50 p99 <<<"$(log_percentiles "$TMP/h2load.log")"
      rm -f "$TMP/h2load.log"
      dt=$((t1 - t0))
      cpu=$(awk -v t="$dt" -v hz="$CLK_TCK" -v n="$ok" 'BEGIN { printf "%.2f", n ? t / hz * 1e6 / n : 0 }')
      bpr=$(awk -v d="$data" -v n="$ok" 'BEGIN { printf "%d", n ? d / n : 0 }')
      row="$RUN_ID	$GIT_REV	$HOST	$s	$proto	$ep	$H2LOAD_CLIENTS	$H2LOAD_STREAMS	$DURATION	$ok	$rps	$mean	$p50	$p99	$bpr	$dt	$CLK_TCK	$cpu	$failed	$errored	$timeout	$non2xx"
      echo "$row" >>"$RUN_TSV"
      echo "$row" >>"$ALL_TSV"
      printf '    %s req/s, mean %s ms, p99 %s ms, %s µs CPU/req, %s B/response%s\n' "$rps" "$mean" "$p99" "$cpu" "$bpr" \
        "$( ((failed + errored + timeout + non2xx)) && echo ", ERRORS: failed=$failed errored=$errored timeout=$timeout non-2xx=$non2xx" )" >&2
      sleep 1
    done
  done
done

# ---------------------------------------------------------------- handshakes
# bench/tls_handshakes.c: HS_THREADS blocking clients, each connecting,
# handshaking (TLS 1.3, ALPN h2), closing, again; "resume" offers each
# session ticket once, as browsers do.
hs_done=0; hs_total=$((${#RUN_SERVERS[@]} * n_hs))
for mode in $HANDSHAKES; do
  hs_flags=(-t"$HS_THREADS")
  [[ $mode == resume ]] && hs_flags+=(-r)
  for s in "${RUN_SERVERS[@]}"; do
    hs_done=$((hs_done + 1))
    log "[handshakes $hs_done/$hs_total] ${LABEL[$s]} $mode"
    out=$RUN_DIR/handshakes.$s.$mode.txt
    if ((WARMUP > 0)); then
      run_load /dev/null "$HS_BIN" "${hs_flags[@]}" -d "$WARMUP" 127.0.0.1 "${TLS_PORT[$s]}" || true
    fi
    # shellcheck disable=SC2086
    t0=$(tree_ticks ${ROOTS[$s]})
    run_load "$out" "$HS_BIN" "${hs_flags[@]}" -d "$HS_DURATION" 127.0.0.1 "${TLS_PORT[$s]}" ||
      { cat "$out" >&2; die "tls_handshakes failed against ${LABEL[$s]}"; }
    # shellcheck disable=SC2086
    t1=$(tree_ticks ${ROOTS[$s]})
    roots_alive "$s" || { show_logs "$s"; die "${LABEL[$s]} died during the $mode handshake run"; }
    line=$(grep '^handshakes=' "$out") || { cat "$out" >&2; die "no result line in $out"; }
    declare -A hs=()
    for kv in $line; do hs[${kv%%=*}]=${kv#*=}; done
    dt=$((t1 - t0))
    cpu=$(awk -v t="$dt" -v hz="$CLK_TCK" -v n="${hs[handshakes]}" 'BEGIN { printf "%.2f", n ? t / hz * 1e6 / n : 0 }')
    row="$RUN_ID	$GIT_REV	$HOST	$s	$mode	$HS_THREADS	${hs[seconds]}	${hs[handshakes]}	${hs[rate]}	${hs[resumed]}	${hs[failed]}	${hs[p50_ms]}	${hs[p99_ms]}	$dt	$CLK_TCK	$cpu"
    echo "$row" >>"$HS_RUN_TSV"
    echo "$row" >>"$HS_ALL_TSV"
    printf '    %s handshakes/s (%s of %s resumed), p99 %s ms, %s µs CPU/handshake%s\n' "${hs[rate]}" "${hs[resumed]}" \
      "${hs[handshakes]}" "${hs[p99_ms]}" "$cpu" "$( ((hs[failed])) && echo ", FAILED: ${hs[failed]}" )" >&2
    unset hs
    sleep 1
  done
done

# ---------------------------------------------------------------- report
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load avg:   $LOAD_AFTER (1/5/15 min) after the run" | tee -a "$RUN_DIR/info.txt" >&2

# Full table: one row per measurement, with issue 4's targets for Tusk:
# >= 2x nginx+php-fpm's req/s on PHP, >= 0.8x on static files.
awk -F'\t' -v labels="$LABELS_KV" '
  BEGIN { nl = split(labels, kv, " "); for (i = 1; i <= nl; i++) { split(kv[i], a, "="); lab[a[1]] = a[2] } }
  NR == 1 { next }
  {
    n++; sv[n] = $4; pr[n] = $5; ep[n] = $6; rps[n] = $11; mean[n] = $12; p50[n] = $13; p99[n] = $14
    bpr[n] = $15; cpu[n] = $18
    e = $19 + $20 + $21 + $22
    err[n] = e ? sprintf("failed %d, errored %d, timeout %d, non-2xx %d", $19, $20, $21, $22) : "0"
    if ($4 == "nginx") base[$5 SUBSEP $6] = $11
  }
  END {
    print "| endpoint | proto | server | req/s | mean | p50 | p99 | CPU µs/req | KiB/resp | req/s vs nginx | target | errors |"
    print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"
    for (i = 1; i <= n; i++) {
      b = base[pr[i] SUBSEP ep[i]]
      r = (b > 0) ? rps[i] / b : -1
      ratio = (r >= 0) ? sprintf("%.2f", r) : "-"
      t = "-"
      if (sv[i] != "nginx" && r >= 0) {
        goal = (ep[i] ~ /\.php$/) ? 2 : 0.8
        t = sprintf(">= %gx: %s", goal, r >= goal ? "met" : "missed")
      }
      printf "| /%s | %s | %s | %.0f | %.2f ms | %.2f ms | %.2f ms | %.1f | %.1f | %s | %s | %s |\n", ep[i], pr[i], lab[sv[i]], rps[i], mean[i], p50[i], p99[i], cpu[i], bpr[i] / 1024, ratio, t, err[i]
    }
  }' "$RUN_TSV" >"$RUN_DIR/table.md"

# Compact table: one row per endpoint x protocol, one column per server:
# "req/s · p99 · CPU µs/req · req/s vs nginx+php-fpm".
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
      k = $6 SUBSEP $5
      if (!(k in seen)) { seen[k] = 1; nk++; key[nk] = k; kep[nk] = $6; kpr[nk] = $5 }
      rps[k, $4] = $11; p99[k, $4] = $14; cpu[k, $4] = $18; have[k, $4] = 1
      if ($4 == "nginx") base[k] = $11
    }
    END {
      h = "| endpoint | proto |"; sep = "|---|---|"
      for (j = 1; j <= ns; j++) { h = h " " lab[srv[j]] " |"; sep = sep "---|" }
      print h; print sep
      for (i = 1; i <= nk; i++) {
        k = key[i]; line = sprintf("| /%s | %s |", kep[i], kpr[i])
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

if [[ -s $HS_RUN_TSV ]]; then
  {
    echo
    echo "TLS handshakes: bench/tls_handshakes.c, $HS_THREADS client threads, ${HS_DURATION}s; each connection: TCP connect, TLS handshake, close; \"resume\" uses each session ticket once."
    echo
    awk -F'\t' -v labels="$LABELS_KV" '
      BEGIN { nl = split(labels, kv, " "); for (i = 1; i <= nl; i++) { split(kv[i], a, "="); lab[a[1]] = a[2] } }
      NR == 1 { next }
      {
        n++; sv[n] = $4; md[n] = $5; hs[n] = $8; rate[n] = $9; res[n] = $10; fail[n] = $11; p99[n] = $13; cpu[n] = $16
        if ($4 == "nginx") { base[$5] = $9; cbase[$5] = $16 }
      }
      END {
        print "| handshakes | server | handshakes/s | resumed | p99 | CPU µs/handshake | handshakes/s vs nginx | CPU vs nginx | failed |"
        print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= n; i++) {
          ratio = (base[md[i]] > 0) ? sprintf("%.2f", rate[i] / base[md[i]]) : "-"
          cratio = (cbase[md[i]] > 0) ? sprintf("%.2f", cpu[i] / cbase[md[i]]) : "-"
          printf "| %s | %s | %.0f | %.0f%% | %.2f ms | %.1f | %s | %s | %d |\n", md[i], lab[sv[i]], rate[i], hs[i] ? 100 * res[i] / hs[i] : 0, p99[i], cpu[i], ratio, cratio, fail[i]
        }
      }' "$HS_RUN_TSV"
  } >>"$RUN_DIR/table.md"
fi
printf '\nLoad average (1/5/15 min): %s before, %s after the run.\n' "$LOAD_BEFORE" "$LOAD_AFTER" >>"$RUN_DIR/table.md"

echo
cat "$RUN_DIR/table.md"
echo
log "raw results: $RUN_DIR/ (h2load output, configs, table.md); appended to $ALL_TSV${HANDSHAKES:+ and $HS_ALL_TSV}"
