/* The SAPI: hooks PHP's output, headers, POST reading and $_SERVER to the
 * channel. Per request it follows php-fpm's order: fill SG(request_info),
 * php_request_startup(), php_execute_script(), php_request_shutdown(). */
#include "php/sapi.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"

#include "php.h"
#include "SAPI.h"
#include "php_main.h"
#include "php_variables.h"
#include "ext/standard/info.h"
#include "main/php_output.h"
#include "zend_exceptions.h"
#include "zend_signal.h"

/* Output beyond this is streamed to the master instead of buffered. */
#define TUSK_BODY_CHUNK (256 * 1024)

typedef struct tusk_php_req_s {
  const tusk_php_sink_t *sink;
  uint16_t seq;
  const tusk_chan_var_t *vars;
  int nvars;
  const char *body;
  size_t bodylen;
  size_t body_off;
  const char *cookie;
  tusk_buf_t frames; /* frames not yet written to the channel */
  tusk_buf_t out;    /* body bytes not yet framed */
  int finished;      /* fastcgi_finish_request() ended the response */
  int aborted;       /* the client went away */
  int streaming;     /* a BODY frame with FLUSH was sent */
  int chan_broken;
} tusk_php_req_t;

static tusk_php_req_t R;
static int opcache_reset_pending;

/* Like php-fpm, a script runs with its own folder as the working directory.
 * PHP would chdir() there and back for every request (getcwd + 2 chdir);
 * instead a worker stays in the last script's folder and only moves when
 * the folder changes, or when a script called chdir() itself. */
static char cwd_now[PATH_MAX];
static int cwd_dirty = 1;
static zif_handler orig_chdir;

static PHP_FUNCTION(tusk_chdir_hook) {
  cwd_dirty = 1;
  orig_chdir(INTERNAL_FUNCTION_PARAM_PASSTHRU);
}

static void enter_script_dir(const char *script) {
  const char *slash = script ? strrchr(script, '/') : NULL;
  if (!slash) return;
  size_t n = (size_t)(slash - script);
  if (n == 0) n = 1;
  if (n >= sizeof cwd_now) return;
  if (!cwd_dirty && strncmp(cwd_now, script, n) == 0 && cwd_now[n] == '\0') return;
  memcpy(cwd_now, script, n);
  cwd_now[n] = '\0';
  cwd_dirty = chdir(cwd_now) != 0;
}


/* Calls opcache_reset() (inside a request) so that code deployed before a
 * reload is compiled afresh by every worker. */
static void run_opcache_reset(void) {
  zval fn, ret;
  ZVAL_STRING(&fn, "opcache_reset");
  if (zend_is_callable(&fn, 0, NULL)) {
    ZVAL_UNDEF(&ret);
    call_user_function(NULL, NULL, &fn, &ret, 0, NULL);
    zval_ptr_dtor(&ret);
  }
  zval_ptr_dtor(&fn);
}

static void frames_send(void) {
  if (R.frames.len == 0 || R.chan_broken) {
    tusk_buf_reset(&R.frames);
    return;
  }
  if (R.sink->write(R.sink->ctx, R.frames.data, R.frames.len) != 0) R.chan_broken = 1;
  tusk_buf_reset(&R.frames);
}

/* Moves buffered body bytes into a BODY frame. */
static void body_frame(uint8_t flags) {
  if (R.out.len == 0 && !(flags & TUSK_CHAN_F_FLUSH)) return;
  if (!R.finished && !R.aborted) {
    tusk_chan_put(&R.frames, TUSK_CHAN_BODY, flags, R.seq, R.out.data, R.out.len);
    if (flags & TUSK_CHAN_F_FLUSH) R.streaming = 1;
  }
  tusk_buf_reset(&R.out);
}

/* Asks the sink whether the client left; PHP then sees connection_aborted()
 * and, unless ignore_user_abort(), stops the script. */
static void poll_abort(void) {
  if (R.aborted) return;
  if (R.chan_broken || R.sink->aborted(R.sink->ctx, R.seq)) {
    R.aborted = 1;
    tusk_buf_reset(&R.out);
    php_handle_aborted_connection();
  }
}

/* ---- SAPI callbacks ---------------------------------------------------- */

static int sapi_tusk_startup(sapi_module_struct *m) { return php_module_startup(m, NULL); }

static size_t sapi_tusk_ub_write(const char *str, size_t len) {
  if (R.finished || R.aborted || !R.sink) return len;
  tusk_buf_append(&R.out, str, len);
  if (R.out.len >= TUSK_BODY_CHUNK) {
    body_frame(TUSK_CHAN_F_FLUSH);
    frames_send();
    poll_abort();
  }
  return len;
}

static void sapi_tusk_flush(void *ctx) {
  if (R.finished || !R.sink || !SG(server_context)) return; /* e.g. module shutdown */
  if (!SG(headers_sent)) sapi_send_headers();
  body_frame(TUSK_CHAN_F_FLUSH);
  frames_send();
  poll_abort();
}

static int sapi_tusk_send_headers(sapi_headers_struct *h) {
  if (R.finished || !R.sink) return SAPI_HEADER_SENT_SUCCESSFULLY;
  int status = h->http_response_code ? h->http_response_code : 200;
  /* A fatal "Maximum execution time" error is a gateway timeout to the client. */
  if ((PG(connection_status) & PHP_CONNECTION_TIMEOUT) && status == 500) status = 504;
  tusk_buf_t block;
  tusk_buf_init(&block);
  uint16_t st = (uint16_t)status;
  tusk_buf_append(&block, &st, 2);
  /* A custom reason phrase from header("HTTP/1.1 404 Gone"). */
  const char *reason = "";
  if (h->http_status_line) {
    const char *sp = strchr(h->http_status_line, ' ');
    if (sp) sp = strchr(sp + 1, ' ');
    if (sp) reason = sp + 1;
  }
  uint16_t rl = (uint16_t)strlen(reason);
  tusk_buf_append(&block, &rl, 2);
  tusk_buf_append(&block, reason, rl);
  /* A CGI-style "Status: 404 Not Found" header sets the status (php-fpm and
   * nginx honour it); it is not sent as a header. */
  zend_llist_position pos;
  sapi_header_struct *sh = zend_llist_get_first_ex(&h->headers, &pos);
  while (sh) {
    if (sh->header_len > 7 && strncasecmp(sh->header, "Status:", 7) == 0) {
      const char *p = sh->header + 7;
      while (*p == ' ' || *p == '\t') p++;
      int code = atoi(p);
      if (code >= 100 && code <= 999) {
        st = (uint16_t)code;
        memcpy(block.data, &st, 2);
        while (*p >= '0' && *p <= '9') p++;
        while (*p == ' ') p++;
        if (*p && rl == 0) {
          /* Rebuild the block's reason with the one from Status:. */
          uint16_t nrl = (uint16_t)strlen(p);
          tusk_buf_t nb;
          tusk_buf_init(&nb);
          tusk_buf_append(&nb, &st, 2);
          tusk_buf_append(&nb, &nrl, 2);
          tusk_buf_append(&nb, p, nrl);
          tusk_buf_dispose(&block);
          block = nb;
          rl = nrl;
        }
      }
    }
    sh = zend_llist_get_next_ex(&h->headers, &pos);
  }
  sh = zend_llist_get_first_ex(&h->headers, &pos);
  while (sh) {
    if (sh->header_len > 7 && strncasecmp(sh->header, "Status:", 7) == 0) {
      sh = zend_llist_get_next_ex(&h->headers, &pos);
      continue;
    }
    /* Header values cannot carry CR or LF: PHP's header() already refuses
     * them, so the block is safe to copy into the HTTP response. */
    tusk_buf_append(&block, sh->header, sh->header_len);
    tusk_buf_append(&block, "\r\n", 2);
    sh = zend_llist_get_next_ex(&h->headers, &pos);
  }
  tusk_chan_put(&R.frames, TUSK_CHAN_HEAD, 0, R.seq, block.data, block.len);
  tusk_buf_dispose(&block);
  return SAPI_HEADER_SENT_SUCCESSFULLY;
}

static size_t sapi_tusk_read_post(char *buf, size_t count) {
  size_t left = R.bodylen - R.body_off;
  size_t n = count < left ? count : left;
  memcpy(buf, R.body + R.body_off, n);
  R.body_off += n;
  return n;
}

static char *sapi_tusk_read_cookies(void) { return (char *)R.cookie; }

static void sapi_tusk_register_variables(zval *track) {
  for (int i = 0; i < R.nvars; i++) {
    const tusk_chan_var_t *v = &R.vars[i];
    if (v->klen == 0 || v->key[0] == '\x01') continue;
    php_register_variable_safe((char *)v->key, v->val, v->vlen, track);
  }
}

static void sapi_tusk_log_message(const char *msg, int syslog_type) {
  tusk_log(TUSK_LOG_ERROR, "%s", msg);
}

/* getenv() sees the request's CGI variables first, as under php-fpm. */
static char *sapi_tusk_getenv(const char *name, size_t len) {
  if (!SG(server_context)) return NULL;
  for (int i = 0; i < R.nvars; i++) {
    const tusk_chan_var_t *v = &R.vars[i];
    if (v->klen == len && v->key[0] != '\x01' && memcmp(v->key, name, len) == 0) return (char *)v->val;
  }
  return NULL;
}

/* ---- PHP functions Tusk provides ---------------------------------------- */

/* Ends the response (like php-fpm's): the client gets everything so far and
 * the script goes on running without output. */
static void tusk_finish_response(void) {
  if (R.finished) return;
  php_output_end_all();
  if (!SG(headers_sent)) sapi_send_headers();
  body_frame(0);
  tusk_chan_put(&R.frames, TUSK_CHAN_END, 0, R.seq, NULL, 0);
  frames_send();
  R.finished = 1;
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_tusk_finish, 0, 0, _IS_BOOL, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_tusk_headers, 0, 0, IS_ARRAY, 0)
ZEND_END_ARG_INFO()

static PHP_FUNCTION(fastcgi_finish_request) {
  ZEND_PARSE_PARAMETERS_NONE();
  if (R.finished) RETURN_FALSE;
  tusk_finish_response();
  RETURN_TRUE;
}

static PHP_FUNCTION(getallheaders) {
  ZEND_PARSE_PARAMETERS_NONE();
  array_init(return_value);
  for (int i = 0; i < R.nvars; i++) {
    const tusk_chan_var_t *v = &R.vars[i];
    if (v->klen < 2 || v->key[0] != '\x01') continue;
    add_assoc_stringl_ex(return_value, v->key + 1, v->klen - 1, (char *)v->val, v->vlen);
  }
}

static const zend_function_entry tusk_functions[] = {
    ZEND_FE(fastcgi_finish_request, arginfo_tusk_finish)
    ZEND_FE(getallheaders, arginfo_tusk_headers)
    ZEND_FALIAS(apache_request_headers, getallheaders, arginfo_tusk_headers)
    ZEND_FE_END};

static sapi_module_struct tusk_sapi = {
    "fpm-fcgi",                  /* name: see sapi.h for why */
    "Tusk",                      /* pretty name */
    sapi_tusk_startup,           /* startup */
    php_module_shutdown_wrapper, /* shutdown */
    NULL,                        /* activate */
    NULL,                        /* deactivate */
    sapi_tusk_ub_write,          /* unbuffered write */
    sapi_tusk_flush,             /* flush */
    NULL,                        /* get uid */
    sapi_tusk_getenv,            /* getenv */
    php_error,                   /* error handler */
    NULL,                        /* header handler */
    sapi_tusk_send_headers,      /* send headers handler */
    NULL,                        /* send header handler */
    sapi_tusk_read_post,         /* read POST data */
    sapi_tusk_read_cookies,      /* read Cookies */
    sapi_tusk_register_variables,
    sapi_tusk_log_message,
    NULL, /* get request time */
    NULL, /* terminate process */
    STANDARD_SAPI_MODULE_PROPERTIES};

int tusk_php_startup(const tusk_conf_t *conf, const char *argv0) {
  zend_signal_startup();
  sapi_startup(&tusk_sapi);
  tusk_sapi.additional_functions = tusk_functions;
  tusk_sapi.php_ini_ignore_cwd = 1;
  if (conf->php_ini) tusk_sapi.php_ini_path_override = conf->php_ini;
  if (conf->ini_entries) tusk_sapi.ini_entries = conf->ini_entries;
  tusk_sapi.executable_location = (char *)argv0;
  if (tusk_sapi.startup(&tusk_sapi) == FAILURE) {
    TUSK_ERROR("PHP failed to start (see the messages above; check php.ini and -d settings)");
    return -1;
  }
  tusk_buf_init(&R.frames);
  tusk_buf_init(&R.out);
  SG(options) |= SAPI_OPTION_NO_CHDIR; /* see enter_script_dir() */
  zend_function *f = zend_hash_str_find_ptr(CG(function_table), "chdir", sizeof("chdir") - 1);
  if (f && f->type == ZEND_INTERNAL_FUNCTION) {
    orig_chdir = f->internal_function.handler;
    f->internal_function.handler = zif_tusk_chdir_hook;
  }
  return 0;
}

void tusk_php_opcache_reset(void) {
  R.sink = NULL;
  SG(server_context) = NULL;
  if (php_request_startup() == SUCCESS) {
    zend_try {
      run_opcache_reset();
    } zend_end_try();
  }
  php_request_shutdown(NULL);
  tusk_buf_reset(&R.frames);
  tusk_buf_reset(&R.out);
}

void tusk_php_shutdown(void) {
  php_module_shutdown();
  sapi_shutdown();
}

static const char *var(const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (int i = 0; i < R.nvars; i++) {
    if (R.vars[i].klen == nl && memcmp(R.vars[i].key, name, nl) == 0) {
      if (len) *len = R.vars[i].vlen;
      return R.vars[i].val;
    }
  }
  return NULL;
}

int tusk_php_run(const tusk_php_sink_t *sink, uint16_t seq, const tusk_chan_var_t *vars, int nvars,
                 const char *body, size_t bodylen) {
  R.sink = sink;
  R.seq = seq;
  R.vars = vars;
  R.nvars = nvars;
  R.body = body;
  R.bodylen = bodylen;
  R.body_off = 0;
  R.finished = R.aborted = R.streaming = R.chan_broken = 0;
  tusk_buf_reset(&R.frames);
  tusk_buf_reset(&R.out);

  const char *method = var("REQUEST_METHOD", NULL);
  const char *script = var("SCRIPT_FILENAME", NULL);
  const char *proto = var("SERVER_PROTOCOL", NULL);
  const char *ctype = var("CONTENT_TYPE", NULL);
  const char *auth = var("HTTP_AUTHORIZATION", NULL);
  R.cookie = var("HTTP_COOKIE", NULL);

  SG(server_context) = (void *)&R;
  SG(request_info).request_method = method;
  SG(request_info).query_string = (char *)var("QUERY_STRING", NULL);
  SG(request_info).request_uri = (char *)var("REQUEST_URI", NULL);
  SG(request_info).path_translated = (char *)script;
  SG(request_info).content_type = (ctype && ctype[0]) ? ctype : NULL;
  SG(request_info).content_length = (zend_long)bodylen;
  SG(request_info).proto_num = (proto && !strcmp(proto, "HTTP/1.0")) ? 1000 : 1001;
  SG(request_info).headers_only = method && !strcmp(method, "HEAD");
  SG(sapi_headers).http_response_code = 200;
  if (auth) php_handle_auth_data(auth);
  enter_script_dir(script);

  if (php_request_startup() == FAILURE) {
    tusk_log(TUSK_LOG_ERROR, "PHP request startup failed for %s", script ? script : "?");
    tusk_buf_t b;
    tusk_buf_init(&b);
    uint16_t st = 500, zero = 0;
    tusk_buf_append(&b, &st, 2);
    tusk_buf_append(&b, &zero, 2);
    tusk_chan_put(&R.frames, TUSK_CHAN_HEAD, 0, seq, b.data, b.len);
    tusk_buf_dispose(&b);
    php_request_shutdown(NULL);
  } else {
    zend_file_handle fh;
    zend_stream_init_filename(&fh, script);
    fh.primary_script = 1;
    zend_first_try {
      php_execute_script(&fh);
    } zend_end_try();
    zend_destroy_file_handle(&fh);
    php_request_shutdown(NULL);
  }
  SG(server_context) = NULL;

  if (!R.finished) {
    body_frame(0);
    tusk_chan_put(&R.frames, TUSK_CHAN_END, 0, seq, NULL, 0);
  }
  tusk_chan_put(&R.frames, TUSK_CHAN_IDLE, 0, seq, NULL, 0);
  frames_send();
  /* Give memory back after a large response. */
  if (R.out.cap > 4 * TUSK_BODY_CHUNK) tusk_buf_dispose(&R.out);
  if (R.frames.cap > 4 * TUSK_BODY_CHUNK) tusk_buf_dispose(&R.frames);
  return R.chan_broken ? -EPIPE : 0;
}

const char *tusk_php_version(void) { return PHP_VERSION; }
