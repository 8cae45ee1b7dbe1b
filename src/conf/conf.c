#include "conf/conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"

/* K_LIST: a string that a repeated flag extends (comma separated).
 * K_LINES: the same, one value per line (values may contain commas). */
typedef enum { K_STR, K_LIST, K_INT, K_SIZE, K_SECS, K_BOOL, K_LINES } kind_t;

typedef struct {
  const char *name; /* flag name without "--" */
  char shortopt;
  kind_t kind;
  size_t offset;
  const char *def;
  const char *help;
} key_t_;

#define OFF(f) offsetof(tusk_conf_t, f)

/* The one table of configuration keys. */
static const key_t_ keys[] = {
    {"listen", 'l', K_STR, OFF(listen), "127.0.0.1:8080", "address to listen on, HOST:PORT (port 0 picks a free one)"},
    {"workers", 'w', K_INT, OFF(workers), "0", "PHP worker processes (0: twice the CPU count)"},
    {"mode", 'm', K_STR, OFF(mode), "pooled",
     "pooled (fair: requests go to idle workers; tusk run: the master holds the connections) or direct "
     "(fastest: workers own connections); docs/modes.md, docs/event-servers.md"},
    {"front-controller", 0, K_STR, OFF(front_controller), NULL,
     "script that handles paths that are not files (default: index.php when present; 'off' disables)"},
    {"worker", 0, K_STR, OFF(worker), NULL,
     "worker mode: this script boots once per worker and loops on frankenphp_handle_request(); "
     "every non-static request goes to it (docs/worker-mode.md)"},
    {"max-requests", 0, K_INT, OFF(max_requests), "0", "replace a PHP worker after this many requests (0: never)"},
    {"max-worker-memory", 0, K_SIZE, OFF(max_worker_memory), "0",
     "replace a worker whose PHP memory after a request is above this (0: never)"},
    {"worker-template", 0, K_BOOL, OFF(worker_template), "0",
     "worker mode, pooled: boot the app once and fork workers from it (ms to replace a worker)"},
    {"debug-state", 0, K_BOOL, OFF(debug_state), "0",
     "worker mode: log which globals and static properties each request changed (slow; finds state bleed)"},
    {"watch", 0, K_LIST, OFF(watch), NULL, "reload the workers when a file under these folders changes (comma separated or repeated)"},
    {"index", 0, K_STR, OFF(index_files), "index.php index.html", "index files for directory requests"},
    {"php-ini", 'c', K_STR, OFF(php_ini), NULL, "php.ini file to use instead of /etc/php/8.2/embed/php.ini"},
    {"static-cache-control", 0, K_STR, OFF(static_cache_control), NULL,
     "Cache-Control header for static files, e.g. 'public, max-age=3600'"},
    {"cache-rule", 0, K_LINES, OFF(cache_rules), NULL,
     "Cache-Control for static files matching a path pattern, 'PATTERN=VALUE' (repeatable, first match wins), "
     "e.g. '/assets/*=public, max-age=31536000, immutable'"},
    {"compress", 0, K_STR, OFF(compress), "br,zstd,gzip",
     "response encodings offered by Accept-Encoding, or 'off' (precompressed .br/.zst/.gz files are always used)"},
    {"compress-min-size", 0, K_SIZE, OFF(compress_min), "512", "smallest response body worth compressing"},
    {"access-log", 0, K_STR, OFF(access_log), NULL, "access log file ('-' for stderr); off by default"},
    {"log-level", 0, K_STR, OFF(log_level), "info", "debug, info, warn or error"},
    {"allow-symlinks", 0, K_BOOL, OFF(allow_symlinks), "0", "serve symlinks that point outside the document root"},
    {"max-header-size", 0, K_SIZE, OFF(max_head), "16k", "largest request head (request line + headers) -> 431"},
    {"max-uri", 0, K_SIZE, OFF(max_uri), "8k", "longest request target -> 414"},
    {"max-headers", 0, K_INT, OFF(max_headers), "100", "most header fields in a request -> 431"},
    {"max-body-size", 0, K_SIZE, OFF(max_body), "8m", "largest request body (like post_max_size) -> 413"},
    {"sse-keepalive", 0, K_SECS, OFF(sse_keepalive), "15",
     "seconds a streamed text/event-stream response may be quiet before a ': keep-alive' comment (0: never)"},
    {"output-buffer-size", 0, K_SIZE, OFF(output_buffer), "4m",
     "response bytes held for a slow client before PHP waits for it; a longer unflushed response is streamed"},
    {"max-connections", 0, K_INT, OFF(max_connections), "10000", "open client connections at most"},
    {"queue-size", 0, K_INT, OFF(queue_size), "1024", "requests waiting for a busy PHP worker at most -> 503"},
    {"header-timeout", 0, K_SECS, OFF(header_timeout), "10", "seconds to receive a request head -> 408"},
    {"body-timeout", 0, K_SECS, OFF(body_timeout), "30", "seconds of silence while receiving a body -> 408"},
    {"idle-timeout", 0, K_SECS, OFF(idle_timeout), "60", "seconds an idle keep-alive connection is kept"},
    {"request-timeout", 0, K_SECS, OFF(request_timeout), "60",
     "wall-clock seconds a PHP request may run before 504 and its worker is replaced"},
    {"file-cache-ttl", 0, K_SECS, OFF(file_cache_ttl), "1",
     "seconds a resolved PHP script path is remembered (0: look it up on every request)"},
    {"drain-timeout", 0, K_SECS, OFF(drain_timeout), "30", "seconds to finish in-flight requests on SIGTERM"},
    {"tls-cert", 0, K_LIST, OFF(tls_cert), NULL,
     "TLS certificate chain file(s), PEM; several (comma separated or repeated) are picked by SNI; "
     "'tusk cert' makes one for localhost"},
    {"tls-key", 0, K_LIST, OFF(tls_key), NULL, "the private key file for each --tls-cert, in the same order"},
    {"tls-listen", 0, K_STR, OFF(tls_listen), NULL, "HTTPS address, HOST:PORT (default: the --listen host, port 8443)"},
    {"websocket-ping", 0, K_SECS, OFF(ws_ping), "30",
     "tusk run: seconds of silence before a WebSocket client is pinged; no answer in as long again closes it (0: never)"},
    {"websocket-app", 0, K_STR, OFF(websocket_app), NULL,
     "tusk serve: hand WebSocket upgrade requests on --listen to the `tusk run` app with this control socket"},
    {"app-socket", 0, K_STR, OFF(app_socket), NULL,
     "tusk run: the control socket other PHP processes push through (default: the pid file's name, .sock)"},
    {"pid-file", 0, K_STR, OFF(pid_file), NULL,
     "tusk run: the master's pid file, used by stop/reload/status (default: /tmp/tusk-<app path>.pid)"},
    {"daemon", 'D', K_BOOL, OFF(daemon), "0", "tusk run: detach from the terminal (logs: --log-file)"},
    {"log-file", 0, K_STR, OFF(log_file), NULL, "write the log to this file instead of stderr"},
    {"tls-redirect", 0, K_BOOL, OFF(tls_redirect), "0", "answer plain HTTP requests with a 308 redirect to HTTPS"},
    {"tls-ocsp", 0, K_BOOL, OFF(tls_ocsp), "1",
     "staple OCSP responses for certificates that name a responder (fetched at start and on reload)"},
    {"tls-ocsp-refresh", 0, K_SECS, OFF(tls_ocsp_refresh), "3600",
     "seconds between OCSP staple refreshes (in the background; also on SIGHUP)"},
    {"h2c", 0, K_BOOL, OFF(h2c), "1", "cleartext HTTP/2 on --listen (prior knowledge and Upgrade: h2c)"},
    {"h2", 0, K_BOOL, OFF(h2), "1", "offer HTTP/2 to TLS clients (ALPN h2)"},
    {"h2-max-streams", 0, K_INT, OFF(h2_max_streams), "100", "concurrent HTTP/2 streams per connection"},
};

static int set_key(tusk_conf_t *c, const key_t_ *k, const char *val, char *err, size_t errlen) {
  char *base = (char *)c + k->offset;
  char *end = NULL;
  switch (k->kind) {
    case K_LIST:
    case K_LINES:
    case K_STR: {
      char **p = (char **)base;
      if (k->kind != K_STR && *p && val) {
        char *joined = malloc(strlen(*p) + strlen(val) + 2);
        if (!joined) return TUSK_ENOMEM;
        sprintf(joined, "%s%c%s", *p, k->kind == K_LINES ? '\n' : ',', val);
        free(*p);
        *p = joined;
        return 0;
      }
      free(*p);
      *p = val ? strdup(val) : NULL;
      return 0;
    }
    case K_INT: {
      errno = 0;
      long v = strtol(val, &end, 10);
      if (errno || end == val || *end || v < 0 || v > INT_MAX) goto bad;
      if (k->offset == OFF(max_headers)) {
        *(size_t *)base = (size_t)v;
      } else {
        *(int *)base = (int)v;
      }
      return 0;
    }
    case K_SIZE: {
      errno = 0;
      unsigned long long v = strtoull(val, &end, 10);
      if (errno || end == val || val[0] == '-') goto bad;
      unsigned long long mul = 1;
      if (*end == 'k' || *end == 'K') mul = 1024, end++;
      else if (*end == 'm' || *end == 'M') mul = 1024 * 1024, end++;
      else if (*end == 'g' || *end == 'G') mul = 1024ULL * 1024 * 1024, end++;
      if (*end) goto bad;
      *(size_t *)base = (size_t)(v * mul);
      return 0;
    }
    case K_SECS: {
      errno = 0;
      double v = strtod(val, &end);
      if (errno || end == val || *end || v < 0) goto bad;
      *(double *)base = v;
      return 0;
    }
    case K_BOOL: {
      if (!strcmp(val, "1") || !strcasecmp(val, "true") || !strcasecmp(val, "yes") || !strcasecmp(val, "on")) {
        *(int *)base = 1;
      } else if (!strcmp(val, "0") || !strcasecmp(val, "false") || !strcasecmp(val, "no") || !strcasecmp(val, "off")) {
        *(int *)base = 0;
      } else {
        goto bad;
      }
      return 0;
    }
  }
bad:
  snprintf(err, errlen, "invalid value '%s' for --%s (%s)", val, k->name,
           k->kind == K_SIZE ? "a size like 8m or 16k" : k->kind == K_SECS ? "seconds, like 30 or 0.5"
           : k->kind == K_BOOL ? "true or false" : "a whole number");
  return TUSK_EPROTO;
}

static const key_t_ *find_key(const char *name, size_t len, char shortopt) {
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(keys); i++) {
    if (shortopt) {
      if (keys[i].shortopt == shortopt) return &keys[i];
    } else if (strlen(keys[i].name) == len && !strncmp(keys[i].name, name, len)) {
      return &keys[i];
    }
  }
  return NULL;
}

static int add_ini(tusk_conf_t *c, const char *kv, char *err, size_t errlen) {
  if (!strchr(kv, '=')) {
    snprintf(err, errlen, "-d needs key=value, got '%s'", kv);
    return TUSK_EPROTO;
  }
  size_t old = c->ini_entries ? strlen(c->ini_entries) : 0;
  char *p = realloc(c->ini_entries, old + strlen(kv) + 2);
  if (!p) return TUSK_ENOMEM;
  memcpy(p + old, kv, strlen(kv));
  p[old + strlen(kv)] = '\n';
  p[old + strlen(kv) + 1] = '\0';
  c->ini_entries = p;
  return 0;
}

void tusk_conf_print_help(void) {
  printf(
      "Tusk %s: a PHP application server.\n\n"
      "Usage:\n"
      "  tusk serve [DOCROOT] [options]   serve DOCROOT (default: the current folder)\n"
      "  tusk run APP.php [start|stop|reload|status] [options]\n"
      "                                   event-driven PHP services (TCP, text, frame, unix\n"
      "                                   sockets, timers; docs/event-servers.md)\n"
      "  tusk cert [DIR] [NAME...]        make a self-signed certificate for local HTTPS\n"
      "  tusk --help | --version\n\n"
      "Options (each also settable as an environment variable TUSK_<NAME>, e.g. TUSK_LISTEN):\n",
      TUSK_VERSION);
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(keys); i++) {
    char flag[64];
    if (keys[i].shortopt) {
      snprintf(flag, sizeof flag, "-%c, --%s", keys[i].shortopt, keys[i].name);
    } else {
      snprintf(flag, sizeof flag, "    --%s", keys[i].name);
    }
    printf("  %-28s %s", flag, keys[i].help);
    if (keys[i].kind == K_BOOL) {
      /* On by default: say so, and how to turn it off. */
      if (keys[i].def && !strcmp(keys[i].def, "1")) printf(" [on; --no-%s turns it off]", keys[i].name);
    } else if (keys[i].def) {
      printf(" [%s]", keys[i].def);
    }
    printf("\n");
  }
  printf("  %-28s %s\n", "-d key=value", "set a php.ini directive (repeatable)");
  printf("  %-28s %s\n", "-h, --help", "show this help");
  printf("  %-28s %s\n", "-V, --version", "show the version");
  printf(
      "\nSignals: SIGTERM/SIGINT drain and exit; SIGHUP/SIGUSR2 replace all PHP workers\n"
      "without failing a request (deploy new code).\n"
      "Docs: docs/configuration.md. php_sapi_name() returns \"fpm-fcgi\" (see docs/php.md).\n");
}

static int parse_addr(const char *flag, const char *addr, char **host, int *port_out, char *err, size_t errlen) {
  const char *colon = strrchr(addr, ':');
  if (!colon || colon == addr) {
    snprintf(err, errlen, "--%s must be HOST:PORT, got '%s'", flag, addr);
    return TUSK_EPROTO;
  }
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535 || end == colon + 1) {
    snprintf(err, errlen, "--%s port must be 0-65535, got '%s'", flag, colon + 1);
    return TUSK_EPROTO;
  }
  *port_out = (int)port;
  const char *h = addr;
  size_t hl = (size_t)(colon - addr);
  if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') h++, hl -= 2;
  *host = strndup(h, hl);
  return 0;
}

static int finish(tusk_conf_t *c, const char *docroot, char *err, size_t errlen) {
  int rc0 = parse_addr("listen", c->listen, &c->listen_host, &c->listen_port, err, errlen);
  if (rc0 != 0) return rc0;
  if (!c->tls_cert != !c->tls_key) {
    snprintf(err, errlen, "--tls-cert and --tls-key go together (make a pair for localhost with 'tusk cert')");
    return TUSK_EPROTO;
  }
  if (c->tls_listen && !c->tls_cert) {
    snprintf(err, errlen, "--tls-listen needs --tls-cert and --tls-key");
    return TUSK_EPROTO;
  }
  if (c->tls_cert) {
    if (!c->tls_listen) {
      char def[300];
      snprintf(def, sizeof def, "%s%s%s:8443", strchr(c->listen_host, ':') ? "[" : "", c->listen_host,
               strchr(c->listen_host, ':') ? "]" : "");
      c->tls_listen = strdup(def);
    }
    if ((rc0 = parse_addr("tls-listen", c->tls_listen, &c->tls_listen_host, &c->tls_listen_port, err, errlen)) != 0) {
      return rc0;
    }
  }

  char real[PATH_MAX];
  if (!realpath(docroot, real)) {
    snprintf(err, errlen, "document root '%s' cannot be opened: %s", docroot, strerror(errno));
    return TUSK_EPROTO;
  }
  struct stat st;
  if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "document root '%s' is not a directory", docroot);
    return TUSK_EPROTO;
  }
  c->docroot = strdup(real);

  if (c->workers == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->workers = (int)(n > 0 ? n * 2 : 2);
  }
  if (!strcmp(c->mode, "pooled")) {
    c->direct = 0;
  } else if (!strcmp(c->mode, "direct")) {
    c->direct = 1;
  } else {
    snprintf(err, errlen, "--mode must be pooled or direct, got '%s'", c->mode);
    return TUSK_EPROTO;
  }
  c->compress_mask = 0;
  if (strcmp(c->compress, "off") && strcmp(c->compress, "")) {
    for (const char *p = c->compress; *p;) {
      size_t n = strcspn(p, ", ");
      if (n == 2 && !strncmp(p, "br", 2)) c->compress_mask |= 2;
      else if (n == 4 && !strncmp(p, "zstd", 4)) c->compress_mask |= 4;
      else if (n == 4 && !strncmp(p, "gzip", 4)) c->compress_mask |= 1;
      else if (n > 0) {
        snprintf(err, errlen, "--compress takes br, zstd, gzip (comma separated) or off, got '%.*s'", (int)n, p);
        return TUSK_EPROTO;
      }
      p += n;
      while (*p == ',' || *p == ' ') p++;
    }
  }
  for (const char *p = c->cache_rules; p && *p;) {
    size_t n = strcspn(p, "\n");
    const char *eq = memchr(p, '=', n);
    if (!eq || eq == p || p[0] != '/') {
      snprintf(err, errlen, "--cache-rule wants '/PATTERN=Cache-Control value', got '%.*s'", (int)n, p);
      return TUSK_EPROTO;
    }
    p += n;
    if (*p) p++;
  }
  if (c->workers > 1024) {
    snprintf(err, errlen, "--workers must be 1024 or less, got %d", c->workers);
    return TUSK_EPROTO;
  }
  if (c->max_headers < 1 || c->max_head < 64 || c->max_uri < 16) {
    snprintf(err, errlen, "header limits are too small (max-headers >= 1, max-header-size >= 64, max-uri >= 16)");
    return TUSK_EPROTO;
  }
  /* Each connection holds an array of max-headers fields. */
  if (c->max_headers > 10000) {
    snprintf(err, errlen, "--max-headers must be 10000 or less, got %zu", c->max_headers);
    return TUSK_EPROTO;
  }
  if (c->output_buffer < 64 * 1024) {
    snprintf(err, errlen, "--output-buffer-size must be at least 64k, got %zu", c->output_buffer);
    return -1;
  }
  if (c->h2_max_streams < 1 || c->h2_max_streams > 10000) {
    snprintf(err, errlen, "--h2-max-streams must be between 1 and 10000, got %d", c->h2_max_streams);
    return TUSK_EPROTO;
  }
  if (c->max_connections < 1) c->max_connections = 1;

  c->front_controller_auto = 0;
  if (c->front_controller == NULL) {
    c->front_controller_auto = 1;
  } else if (!strcmp(c->front_controller, "off") || !c->front_controller[0]) {
    free(c->front_controller);
    c->front_controller = NULL;
  } else {
    const char *fc = c->front_controller;
    while (*fc == '/') fc++;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", c->docroot, fc);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
      snprintf(err, errlen, "front controller '%s' is not a file under %s", c->front_controller, c->docroot);
      return TUSK_EPROTO;
    }
    char *copy = strdup(fc);
    free(c->front_controller);
    c->front_controller = copy;
  }
  if (c->worker) {
    char path[PATH_MAX], real2[PATH_MAX];
    if (c->worker[0] == '/') snprintf(path, sizeof path, "%s", c->worker);
    else snprintf(path, sizeof path, "%s/%s", c->docroot, c->worker);
    if (!realpath(path, real2) || stat(real2, &st) != 0 || !S_ISREG(st.st_mode)) {
      /* Relative to the current folder, as a shell user would mean it. */
      if (c->worker[0] == '/' || !realpath(c->worker, real2) || stat(real2, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "--worker script '%s' is not a file (give a path relative to %s or absolute)",
                 c->worker, c->docroot);
        return TUSK_EPROTO;
      }
    }
    c->worker_script = strdup(real2);
    size_t dl = strlen(c->docroot);
    const char *base = strrchr(real2, '/');
    if (!strncmp(real2, c->docroot, dl) && real2[dl] == '/') {
      c->worker_name = strdup(real2 + dl);
    } else {
      c->worker_name = strdup(base ? base : "/worker.php");
    }
    /* The worker script is the front controller. */
    c->front_controller_auto = 0;
    free(c->front_controller);
    c->front_controller = NULL;
  }
  if (c->worker_template && (!c->worker || c->direct)) {
    snprintf(err, errlen, "--worker-template needs --worker and --mode pooled");
    return TUSK_EPROTO;
  }
  if (c->watch) {
    char *copy = strdup(c->watch), *save = NULL;
    for (char *d = strtok_r(copy, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
      while (*d == ' ') d++;
      if (!*d) continue;
      if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "--watch folder '%s' does not exist", d);
        free(copy);
        return TUSK_EPROTO;
      }
    }
    free(copy);
  }
  if (c->front_controller_auto) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/index.php", c->docroot);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) c->front_controller = strdup("index.php");
  }
  if (c->php_ini && access(c->php_ini, R_OK) != 0) {
    snprintf(err, errlen, "--php-ini file '%s' cannot be read: %s", c->php_ini, strerror(errno));
    return TUSK_EPROTO;
  }
  return 0;
}

int tusk_conf_parse(tusk_conf_t *c, int argc, char **argv, char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  c->cmd = TUSK_CMD_SERVE;
  int rc;
  /* Defaults, then the environment. */
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(keys); i++) {
    if (keys[i].def && (rc = set_key(c, &keys[i], keys[i].def, err, errlen)) != 0) return rc;
    char env[64] = "TUSK_";
    size_t n = 5;
    for (const char *p = keys[i].name; *p && n < sizeof env - 1; p++) env[n++] = *p == '-' ? '_' : (char)toupper(*p);
    env[n] = '\0';
    const char *v = getenv(env);
    if (v && (rc = set_key(c, &keys[i], v, err, errlen)) != 0) {
      size_t l = strlen(err);
      snprintf(err + l, errlen - l, " (from %s)", env);
      return rc;
    }
  }
  const char *docroot = getenv("TUSK_DOCROOT");
  int i = 1;
  if (i < argc && !strcmp(argv[i], "serve")) i++;
  else if (i < argc && !strcmp(argv[i], "run")) {
    c->cmd = TUSK_CMD_RUN;
    i++;
  }
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "help")) {
      c->cmd = TUSK_CMD_HELP;
      return 0;
    }
    if (!strcmp(a, "-V") || !strcmp(a, "--version") || !strcmp(a, "version")) {
      c->cmd = TUSK_CMD_VERSION;
      return 0;
    }
    if (!strcmp(a, "-d")) {
      if (i + 1 >= argc) {
        snprintf(err, errlen, "-d needs key=value");
        return TUSK_EPROTO;
      }
      if ((rc = add_ini(c, argv[++i], err, errlen)) != 0) return rc;
      continue;
    }
    if (!strncmp(a, "-d", 2) && a[2]) {
      if ((rc = add_ini(c, a + 2, err, errlen)) != 0) return rc;
      continue;
    }
    const key_t_ *k = NULL;
    const char *val = NULL;
    if (a[0] == '-' && a[1] == '-') {
      const char *name = a + 2;
      const char *eq = strchr(name, '=');
      size_t len = eq ? (size_t)(eq - name) : strlen(name);
      k = find_key(name, len, 0);
      if (!k && len > 3 && !strncmp(name, "no-", 3) && (k = find_key(name + 3, len - 3, 0)) && k->kind == K_BOOL) {
        val = "0";
      } else if (!k) {
        snprintf(err, errlen, "unknown option '%s' (see tusk --help)", a);
        return TUSK_EPROTO;
      }
      if (!val) val = eq ? eq + 1 : NULL;
    } else if (a[0] == '-' && a[1] && !a[2]) {
      k = find_key(NULL, 0, a[1]);
      if (!k) {
        snprintf(err, errlen, "unknown option '%s' (see tusk --help)", a);
        return TUSK_EPROTO;
      }
    } else if (a[0] == '-') {
      snprintf(err, errlen, "unknown option '%s' (see tusk --help)", a);
      return TUSK_EPROTO;
    } else if (c->cmd == TUSK_CMD_RUN) {
      if (!c->app_script) {
        c->app_script = strdup(a);
      } else if (!c->app_action && (!strcmp(a, "start") || !strcmp(a, "stop") || !strcmp(a, "reload") ||
                                    !strcmp(a, "status"))) {
        c->app_action = strdup(a);
      } else {
        snprintf(err, errlen, "tusk run takes APP.php and one of start, stop, reload, status; got '%s'", a);
        return TUSK_EPROTO;
      }
      continue;
    } else {
      if (docroot && docroot != getenv("TUSK_DOCROOT")) {
        snprintf(err, errlen, "more than one document root given ('%s' and '%s')", docroot, a);
        return TUSK_EPROTO;
      }
      docroot = a;
      continue;
    }
    if (!val) {
      if (k->kind == K_BOOL) {
        val = "1";
      } else if (i + 1 < argc) {
        val = argv[++i];
      } else {
        snprintf(err, errlen, "option --%s needs a value (see tusk --help)", k->name);
        return TUSK_EPROTO;
      }
    }
    if ((rc = set_key(c, k, val, err, errlen)) != 0) return rc;
  }
  if (c->cmd == TUSK_CMD_RUN) {
    char real[PATH_MAX];
    if (!c->app_script) {
      snprintf(err, errlen, "tusk run needs the application script: tusk run app.php");
      return TUSK_EPROTO;
    }
    if (!realpath(c->app_script, real)) {
      snprintf(err, errlen, "cannot open the application script '%s': %s", c->app_script, strerror(errno));
      return TUSK_EPROTO;
    }
    free(c->app_script);
    c->app_script = strdup(real);
    if (!c->app_action) c->app_action = strdup("start");
    if (!c->pid_file) {
      char pf[PATH_MAX + 32];
      size_t n = (size_t)snprintf(pf, sizeof pf, "/tmp/tusk-");
      for (const char *q = real + 1; *q && n + 8 < sizeof pf; q++) pf[n++] = (*q == '/' || *q == ' ') ? '_' : *q;
      snprintf(pf + n, sizeof pf - n, ".pid");
      c->pid_file = strdup(pf);
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", real);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) *slash = 0;
    return finish(c, dir, err, errlen);
  }
  return finish(c, docroot ? docroot : ".", err, errlen);
}

void tusk_conf_dispose(tusk_conf_t *c) {
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(keys); i++) {
    if (keys[i].kind == K_STR || keys[i].kind == K_LIST || keys[i].kind == K_LINES) {
      char **p = (char **)((char *)c + keys[i].offset);
      free(*p);
      *p = NULL;
    }
  }
  free(c->docroot);
  free(c->app_script);
  free(c->app_action);
  free(c->listen_host);
  free(c->tls_listen_host);
  free(c->ini_entries);
  free(c->worker_script);
  free(c->worker_name);
  c->tls_listen_host = NULL;
  c->docroot = c->listen_host = c->ini_entries = c->worker_script = c->worker_name = NULL;
}
