/* Tusk's configuration: one table of keys, each settable by a command-line
 * flag (--key) and by an environment variable (TUSK_KEY, upper case, '-'
 * as '_'). Flags win over the environment.
 *
 * tusk_conf_parse() fills a tusk_conf_t from argv/environ. On a bad value it
 * returns a negative code and writes one clear sentence into err. The
 * strings in tusk_conf_t are owned by the conf and freed by
 * tusk_conf_dispose(). */
#ifndef TUSK_CONF_CONF_H
#define TUSK_CONF_CONF_H

#include <stddef.h>

typedef enum {
  TUSK_CMD_SERVE = 0,
  TUSK_CMD_HELP,
  TUSK_CMD_VERSION,
  TUSK_CMD_RUN, /* tusk run app.php [start|stop|reload|status] */
} tusk_cmd_t;

typedef struct tusk_conf_s {
  tusk_cmd_t cmd;
  char *app_script;       /* tusk run: absolute path of the application script */
  char *app_action;       /* "start" (default), "stop", "reload" or "status" */
  char *pid_file;         /* tusk run: where the master's pid is kept */
  char *app_socket;       /* tusk run: the control socket's path */
  char *websocket_app;    /* tusk serve: where WebSocket upgrades go (a tusk run control socket) */
  int daemon;             /* tusk run -D: detach from the terminal */
  double ws_ping;         /* tusk run: WebSocket idle ping period, seconds (0: off) */
  char *log_file;         /* --log-file: the log (stderr) goes there */
  char *docroot;          /* absolute, resolved */
  char *listen;           /* "host:port" as given */
  char *listen_host;
  int listen_port;
  int workers;
  char *mode;             /* "pooled" or "direct" */
  int direct;             /* mode == direct */
  char *front_controller; /* script path relative to docroot, or NULL */
  char *worker;           /* --worker as given */
  char *worker_script;    /* absolute path of the worker script, or NULL */
  char *worker_name;      /* its SCRIPT_NAME ("/worker.php") */
  int max_requests;       /* recycle a worker after this many requests; 0: never */
  size_t max_worker_memory; /* recycle a worker whose PHP memory exceeds this; 0: never */
  int debug_state;
  int worker_template;    /* boot the worker script once, fork workers from it */        /* worker mode: report state kept between requests */
  char *watch;            /* folders whose changes trigger a reload, comma separated */
  int front_controller_auto; /* use index.php when present */
  char *index_files;      /* space separated */
  char *php_ini;          /* --php-ini: replaces the system php.ini */
  char *ini_entries;      /* -d key=value lines, "\n" separated */
  char *static_cache_control;
  char *cache_rules;      /* "PATTERN=VALUE" lines */
  char *compress;         /* encodings, comma separated, or "off" */
  unsigned compress_mask; /* tusk_enc_t bits from compress */
  size_t compress_min;
  char *access_log;       /* path, "-" for stderr, NULL for off */
  char *log_level;
  int allow_symlinks;     /* follow symlinks that leave the docroot */
  size_t max_head;
  size_t max_uri;
  size_t max_headers;
  size_t max_body;
  size_t output_buffer; /* a response's unsent bytes before its PHP worker waits */
  double sse_keepalive; /* seconds; 0: no keep-alive comments */
  int max_connections;
  int queue_size;
  double header_timeout;
  double body_timeout;
  double idle_timeout;
  double request_timeout;
  double drain_timeout;
  double file_cache_ttl;
  /* HTTP/2 and TLS */
  int h2c;                /* cleartext HTTP/2: prior knowledge and Upgrade: h2c */
  int h2_max_streams;     /* SETTINGS_MAX_CONCURRENT_STREAMS */
  char *tls_cert;         /* certificate chain files, comma separated */
  char *tls_key;          /* matching key files */
  char *tls_listen;       /* "host:port" for HTTPS, or NULL */
  char *tls_listen_host;
  int tls_listen_port;
  int tls_redirect;       /* plain HTTP requests are redirected to HTTPS */
  int tls_ocsp;
  double tls_ocsp_refresh; /* seconds */
  int h2;                 /* offer h2 in ALPN */
} tusk_conf_t;

int tusk_conf_parse(tusk_conf_t *c, int argc, char **argv, char *err, size_t errlen);
void tusk_conf_dispose(tusk_conf_t *c);
void tusk_conf_print_help(void);

#endif
