#!/bin/sh
# Installs every Debian 12 package that Tusk's build, tests and benchmarks need.
# Safe to run repeatedly: it only calls apt-get when a package is missing.
set -eu

BUILD="build-essential cmake pkg-config libphp8.2-embed php8.2-dev php8.2-opcache
libuv1-dev libnghttp2-dev libssl-dev libbrotli-dev zlib1g-dev libzstd-dev libwslay-dev"
RUNTIME="php8.2-cli php8.2-sqlite3 php8.2-xml php8.2-mbstring php8.2-apcu php8.2-intl"
TEST="python3 python3-pytest python3-requests curl dokuwiki adminer
php-symfony-http-kernel php-symfony-http-foundation php-symfony-routing php-symfony-runtime
php-slim php-slim-psr7 php-nyholm-psr7 openssl nghttp2-client python3-h2 python3-httpx python3-brotli python3-websockets zstd"
# bench/run.sh: wrk, nginx-light, php8.2-fpm. bench/h2.sh: nginx-light (has
# http_v2, ssl, gzip_static), php8.2-fpm, h2load from nghttp2-client, and
# from the lists above cc (build-essential), libssl-dev, curl, openssl;
# nginx's brotli filter and the brotli CLI for runs with a browser's
# Accept-Encoding.
BENCH="wrk nginx-light php8.2-fpm nghttp2-client libnginx-mod-http-brotli-filter brotli"

want="$BUILD $RUNTIME $TEST"
case "${1:-}" in
  --bench) want="$want $BENCH" ;;
esac

missing=""
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

if [ -z "$missing" ]; then
  exit 0
fi

echo "tusk: installing Debian packages:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# dokuwiki pulls in apache2 by default; we never want it running.
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
