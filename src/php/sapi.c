/* The SAPI: hooks PHP's output, headers, POST reading and $_SERVER to the
 * channel. Per request it follows php-fpm's order: fill SG(request_info),
 * php_request_startup(), php_execute_script(), php_request_shutdown(). */
#include "php/sapi.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
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
#include "main/php_output.h"
#include "zend_exceptions.h"
#include "zend_signal.h"
#include "zend_smart_str.h"

/* Output beyond this is streamed to the master instead of buffered. */
#define TUSK_BODY_CHUNK (256 * 1024)

typedef struct tusk_php_req_s {
  tusk_php_job_t job; /* the request: sink, seq, variables, body */
  size_t body_off;
  const char *cookie;
  tusk_buf_t frames; /* frames not yet written to the channel */
  tusk_buf_t out;    /* body bytes not yet framed */
  int finished;      /* fastcgi_finish_request() ended the response */
  int aborted;       /* the client went away */
  int chan_broken;
} tusk_php_req_t;

static tusk_php_req_t R;
static int last_request; /* the worker stops after this request: no IDLE */

void tusk_php_set_last_request(int last) { last_request = last; }

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
  if (R.job.sink->write(R.job.sink->ctx, R.frames.data, R.frames.len) != 0) R.chan_broken = 1;
  tusk_buf_reset(&R.frames);
}

/* Moves buffered body bytes into a BODY frame. */
static void body_frame(uint8_t flags) {
  if (R.out.len == 0 && !(flags & TUSK_CHAN_F_FLUSH)) return;
  if (!R.finished && !R.aborted) {
    tusk_chan_put(&R.frames, TUSK_CHAN_BODY, flags, R.job.seq, R.out.data, R.out.len);
  }
  tusk_buf_reset(&R.out);
}

/* Asks the sink whether the client left; PHP then sees connection_aborted()
 * and, unless ignore_user_abort(), stops the script. */
static void poll_abort(void) {
  if (R.aborted) return;
  if (R.chan_broken || R.job.sink->aborted(R.job.sink->ctx, R.job.seq)) {
    R.aborted = 1;
    tusk_buf_reset(&R.out);
    php_handle_aborted_connection();
  }
}

/* ---- SAPI callbacks ---------------------------------------------------- */

extern const zend_function_entry tusk_app_functions[]; /* php/app.c */

static int sapi_tusk_startup(sapi_module_struct *m) { return php_module_startup(m, NULL); }

static size_t sapi_tusk_ub_write(const char *str, size_t len) {
  if (R.finished || R.aborted || !R.job.sink) return len;
  tusk_buf_append(&R.out, str, len);
  if (R.out.len >= TUSK_BODY_CHUNK) {
    body_frame(TUSK_CHAN_F_FLUSH);
    frames_send();
    poll_abort();
  }
  return len;
}

static void sapi_tusk_flush(void *ctx) {
  if (R.finished || !R.job.sink || !SG(server_context)) return; /* e.g. module shutdown */
  if (!SG(headers_sent)) sapi_send_headers();
  body_frame(TUSK_CHAN_F_FLUSH);
  frames_send();
  poll_abort();
}

static int sapi_tusk_send_headers(sapi_headers_struct *h) {
  if (R.finished || !R.job.sink) return SAPI_HEADER_SENT_SUCCESSFULLY;
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
  if (status >= 100 && status < 200) {
    /* An informational response (103 Early Hints via headers_send()): out
     * now; the final head follows later. */
    tusk_chan_put(&R.frames, TUSK_CHAN_INFO, 0, R.job.seq, block.data, block.len);
    tusk_buf_dispose(&block);
    frames_send();
    return SAPI_HEADER_SENT_SUCCESSFULLY;
  }
  tusk_chan_put(&R.frames, TUSK_CHAN_HEAD, 0, R.job.seq, block.data, block.len);
  tusk_buf_dispose(&block);
  return SAPI_HEADER_SENT_SUCCESSFULLY;
}

static size_t sapi_tusk_read_post(char *buf, size_t count) {
  size_t left = R.job.bodylen - R.body_off;
  size_t n = count < left ? count : left;
  memcpy(buf, R.job.body + R.body_off, n);
  R.body_off += n;
  return n;
}

static char *sapi_tusk_read_cookies(void) { return (char *)R.cookie; }

/* 1 when php_register_variable_safe() would store name as it is: A-Z,
 * 0-9 and _ (CGI names, HTTP_* from headers), not starting with a digit,
 * and not GLOBALS. */
static int plain_var_name(const char *k, size_t n) {
  if (n == 0 || (k[0] >= '0' && k[0] <= '9') || (n == 7 && !memcmp(k, "GLOBALS", 7))) return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = k[i];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_')) return 0;
  }
  return 1;
}

/* The names of $_SERVER entries, kept for the life of the process as
 * persistent strings with their hash computed (up to 1024 names; never
 * freed, so that arrays an app keeps between requests can hold them), and
 * the name last seen at each position of the request's variables: most
 * requests repeat the previous one's names, so a name costs a compare
 * instead of an allocation and a hash. */
#define NAME_SLOTS 96
static HashTable known_names;
static int known_names_init;
static zend_string *name_at[NAME_SLOTS];

static zend_string *known_name(int i, const char *k, size_t n) {
  zend_string *s = i < NAME_SLOTS ? name_at[i] : NULL;
  if (s && ZSTR_LEN(s) == n && !memcmp(ZSTR_VAL(s), k, n)) return s;
  if (!known_names_init) {
    zend_hash_init(&known_names, 64, NULL, NULL, 1);
    known_names_init = 1;
  }
  s = zend_hash_str_find_ptr(&known_names, k, n);
  if (!s) {
    if (zend_hash_num_elements(&known_names) >= 1024 || !plain_var_name(k, n)) return NULL;
    s = zend_string_init(k, n, 1);
    zend_string_hash_val(s);
    zend_hash_str_add_ptr(&known_names, k, n, s);
  }
  if (i < NAME_SLOTS) name_at[i] = s;
  return s;
}

static void sapi_tusk_register_variables(zval *track) {
  HashTable *ht = Z_TYPE_P(track) == IS_ARRAY ? Z_ARRVAL_P(track) : NULL;
  /* Sized once (no rehash while ~30 variables go in); plain names are
   * stored directly, which is what the generic path ends up doing. */
  if (ht && !HT_IS_PACKED(ht) && !(GC_FLAGS(ht) & IS_ARRAY_IMMUTABLE))
    zend_hash_extend(ht, zend_hash_num_elements(ht) + (uint32_t)R.job.nvars, 0);
  for (int i = 0; i < R.job.nvars; i++) {
    const tusk_chan_var_t *v = &R.job.vars[i];
    if (v->klen == 0 || v->key[0] == '\x01') continue;
    zend_string *name = ht && GC_REFCOUNT(ht) == 1 ? known_name(i, v->key, v->klen) : NULL;
    if (name) {
      zval z;
      ZVAL_STRINGL_FAST(&z, v->val, v->vlen);
      zend_hash_update(ht, name, &z);
      continue;
    }
    php_register_variable_safe((char *)v->key, v->val, v->vlen, track);
  }
}

static void sapi_tusk_log_message(const char *msg, int syslog_type) {
  tusk_log(TUSK_LOG_ERROR, "%s", msg);
}

/* getenv() sees the request's CGI variables first, as under php-fpm. */
static char *sapi_tusk_getenv(const char *name, size_t len) {
  if (!SG(server_context)) return NULL;
  for (int i = 0; i < R.job.nvars; i++) {
    const tusk_chan_var_t *v = &R.job.vars[i];
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
  tusk_chan_put(&R.frames, TUSK_CHAN_END, 0, R.job.seq, NULL, 0);
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
  for (int i = 0; i < R.job.nvars; i++) {
    const tusk_chan_var_t *v = &R.job.vars[i];
    if (v->klen < 2 || v->key[0] != '\x01') continue;
    add_assoc_stringl_ex(return_value, v->key + 1, v->klen - 1, (char *)v->val, v->vlen);
  }
}

/* ---- worker mode ---------------------------------------------------------
 *
 * The worker script runs as one long PHP request; each call to
 * frankenphp_handle_request() opens a request inside it, runs the handler
 * and closes it. Opening and closing repeat what php_request_startup() and
 * php_request_shutdown() do for request-scoped state: output layer, SAPI
 * state (headers, POST data, uploads, php://input), superglobals, the
 * session and filter modules, time and memory limits. */

typedef struct tusk_php_worker_s {
  const tusk_php_worker_io_t *io;
  int active;      /* the running script is a worker script */
  int in_request;  /* a worker request is open (or the boot request) */
  int in_handler;
  int booted;      /* handle_request() was called once */
  int stop;        /* return false from the next handle_request() */
  uint64_t served;
  int exception;   /* a handler threw: restart the worker */
  int timeout_handler; /* zend_set_timeout() installed its SIGPROF handler */
  int timer_armed;     /* max_execution_time may still be armed (see tusk_php_worker_idle) */
} tusk_php_worker_t;

static tusk_php_worker_t W;

static const char *const modules_to_reload[] = {"filter", "session", NULL};

static void reload_modules(int startup) {
  for (const char *const *name = modules_to_reload; *name; name++) {
    zend_module_entry *m = zend_hash_str_find_ptr(&module_registry, *name, strlen(*name));
    if (!m) continue;
    if (startup && m->request_startup_func) m->request_startup_func(m->type, m->module_number);
    if (!startup && m->request_shutdown_func) m->request_shutdown_func(m->type, m->module_number);
  }
}

/* Rebuilds the superglobals from the request now in SG(request_info).
 * Scripts are compiled once in worker mode, so auto_globals_jit never
 * fires again: $_SERVER (and $_REQUEST when the script uses it) are
 * imported here; $_ENV is kept; globals without an importer ($_SESSION)
 * are removed. $_FILES is reset first: the POST importer refills it. */
static void reset_superglobals(void) {
  zval *files = &PG(http_globals)[TRACK_VARS_FILES];
  zval_ptr_dtor_nogc(files);
  ZVAL_UNDEF(files);
  zend_string *server = ZSTR_KNOWN(ZEND_STR_AUTOGLOBAL_SERVER);
  zend_string *env = ZSTR_KNOWN(ZEND_STR_AUTOGLOBAL_ENV);
  zend_string *request = ZSTR_KNOWN(ZEND_STR_AUTOGLOBAL_REQUEST);
  zend_auto_global *ag;
  ZEND_HASH_MAP_FOREACH_PTR(CG(auto_globals), ag) {
    if (zend_string_equals(ag->name, env)) continue;
    if (zend_string_equals(ag->name, server)) {
      ag->armed = ag->auto_global_callback(ag->name);
    } else if (ag->jit) {
      if (zend_string_equals(ag->name, request) && zend_hash_exists(&EG(symbol_table), request))
        ag->armed = ag->auto_global_callback(ag->name);
    } else if (ag->auto_global_callback) {
      ag->armed = ag->auto_global_callback(ag->name);
    } else {
      zend_hash_del(&EG(symbol_table), ag->name);
    }
  }
  ZEND_HASH_FOREACH_END();
}

static void fill_request_info(void);
static const char *var(const char *name, size_t *len);

static int worker_request_startup(void) {
  int ok = 1;
  fill_request_info();
  zend_try {
    php_output_activate();
    PG(header_is_being_sent) = 0;
    PG(connection_status) = PHP_CONNECTION_NORMAL;
    PG(ignore_user_abort) = 1; /* a client leaving must not end the worker script */
    sapi_activate();
    SG(sapi_headers).http_response_code = 200;
    /* max_execution_time, re-armed. The SIGPROF handler is installed
     * once: re-installing it (sigaction + sigprocmask) on every request
     * would double the system calls of a hello-world request. */
    zend_set_timeout(EG(timeout_seconds), !W.timeout_handler);
    W.timeout_handler = 1;
    if (PG(expose_php)) sapi_add_header(SAPI_PHP_VERSION_HEADER, sizeof(SAPI_PHP_VERSION_HEADER) - 1, 1);
    if (PG(output_handler) && PG(output_handler)[0]) {
      zval oh;
      ZVAL_STRING(&oh, PG(output_handler));
      php_output_start_user(&oh, 0, PHP_OUTPUT_HANDLER_STDFLAGS);
      zval_ptr_dtor(&oh);
    } else if (PG(output_buffering)) {
      php_output_start_user(NULL, PG(output_buffering) > 1 ? PG(output_buffering) : 0, PHP_OUTPUT_HANDLER_STDFLAGS);
    } else if (PG(implicit_flush)) {
      php_output_set_implicit_flush(1);
    }
    reset_superglobals();
    reload_modules(1);
  } zend_catch {
    ok = 0;
  } zend_end_try();
  W.in_request = 1;
  return ok;
}

/* ini settings changed while the worker script booted become its baseline
 * (as if they were in php.ini); what a request changes (ini_set(),
 * set_time_limit()) is undone when it ends, as at the end of any request. */
static void commit_boot_ini(void) {
  if (!EG(modified_ini_directives)) return;
  zend_ini_entry *e;
  ZEND_HASH_MAP_FOREACH_PTR(EG(modified_ini_directives), e) {
    e->modified = 0;
    e->orig_value = NULL; /* the php.ini value: kept alive, used no more */
  }
  ZEND_HASH_FOREACH_END();
  zend_hash_destroy(EG(modified_ini_directives));
  FREE_HASHTABLE(EG(modified_ini_directives));
  EG(modified_ini_directives) = NULL;
}

void tusk_php_worker_idle(void) {
  if (!W.timer_armed) return;
  W.timer_armed = 0;
  zend_unset_timeout();
}

static void worker_request_shutdown(void) {
  zend_try {
    php_output_end_all();
  } zend_end_try();
  zend_try {
    reload_modules(0);
  } zend_end_try();
  zend_try {
    php_output_deactivate(); /* sends the headers if nothing did */
  } zend_end_try();
  zend_try {
    sapi_deactivate(); /* POST data, uploaded files, php://input */
  } zend_end_try();
  if (W.booted) {
    zend_try {
      zend_ini_deactivate(); /* memory_limit, max_execution_time, ... */
    } zend_end_try();
  }
  zend_set_memory_limit(PG(memory_limit));
  /* max_execution_time stays armed until tusk_php_worker_idle(): the next
   * request re-arms it, or the wait for one disarms it. */
  W.timer_armed = 1;
  W.in_request = 0;
}

/* Ends the response of the request that just ran and tells the sink. */
static void worker_finish_frames(int idle) {
  if (!R.finished) {
    body_frame(0);
    tusk_chan_put(&R.frames, TUSK_CHAN_END, 0, R.job.seq, NULL, 0);
  }
  /* A worker about to stop must not be given another request. */
  if (idle) tusk_chan_put(&R.frames, TUSK_CHAN_IDLE, 0, R.job.seq, NULL, 0);
  frames_send();
  if (R.out.cap > 4 * TUSK_BODY_CHUNK) tusk_buf_dispose(&R.out);
  if (R.frames.cap > 4 * TUSK_BODY_CHUNK) tusk_buf_dispose(&R.frames);
}

static int discard_write(void *ctx, const char *frames, size_t len) {
  size_t off = 0;
  while (off < len) {
    tusk_chan_frame_t f;
    const char *payload;
    int n = tusk_chan_get(frames + off, len - off, &f, &payload);
    if (n < 0) break;
    if (f.type == TUSK_CHAN_BODY && f.len > 0) {
      TUSK_WARN("the worker script printed %u bytes outside of a request (discarded): %.*s", f.len,
                (int)TUSK_MIN(f.len, 80u), payload);
    }
    off += (size_t)n;
  }
  return 0;
}
static int discard_aborted(void *ctx, uint16_t seq) { return 0; }
static const tusk_php_sink_t discard_sink = {discard_write, discard_aborted, NULL};

/* ---- state-bleed detection (--debug-state) ---------------------------------
 *
 * Worker mode keeps globals and static properties from one request to the
 * next. With --debug-state, a fingerprint of each global variable and of
 * each user class's static properties is taken before the handler runs
 * and after; what changed is logged by name, so a team can find the state
 * that leaks between requests. */

static uint64_t fp_mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h;
}

static uint64_t fp_bytes(uint64_t h, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
  return fp_mix(h, n);
}

/* A fingerprint of a value, bounded in depth and size. */
static uint64_t fp_zval(zval *z, int depth, size_t *budget) {
  uint64_t h = 1469598103934665603ull;
  if (*budget == 0) return h;
  (*budget)--;
  ZVAL_DEREF(z);
  h = fp_mix(h, Z_TYPE_P(z));
  switch (Z_TYPE_P(z)) {
    case IS_LONG: return fp_mix(h, (uint64_t)Z_LVAL_P(z));
    case IS_DOUBLE: {
      uint64_t bits;
      double d = Z_DVAL_P(z);
      memcpy(&bits, &d, sizeof bits);
      return fp_mix(h, bits);
    }
    case IS_STRING: return fp_bytes(h, Z_STRVAL_P(z), Z_STRLEN_P(z));
    case IS_ARRAY: {
      h = fp_mix(h, zend_hash_num_elements(Z_ARRVAL_P(z)));
      if (depth <= 0) return h;
      zend_string *key;
      zend_ulong idx;
      zval *v;
      ZEND_HASH_FOREACH_KEY_VAL(Z_ARRVAL_P(z), idx, key, v) {
        h = key ? fp_bytes(h, ZSTR_VAL(key), ZSTR_LEN(key)) : fp_mix(h, idx);
        h = fp_mix(h, fp_zval(v, depth - 1, budget));
        if (*budget == 0) break;
      }
      ZEND_HASH_FOREACH_END();
      return h;
    }
    case IS_OBJECT: {
      h = fp_mix(h, Z_OBJ_HANDLE_P(z));
      if (depth <= 0 || Z_OBJCE_P(z)->type != ZEND_USER_CLASS) return h;
      HashTable *props = Z_OBJPROP_P(z);
      zval tmp;
      if (!props) return h;
      ZVAL_ARR(&tmp, props);
      return fp_mix(h, fp_zval(&tmp, depth - 1, budget));
    }
    default: return h;
  }
}

static HashTable *bleed_before;
static int debug_state;

static void fp_state(HashTable *out) {
  zend_string *name;
  zval *v;
  ZEND_HASH_FOREACH_STR_KEY_VAL(&EG(symbol_table), name, v) {
    if (!name || ZSTR_VAL(name)[0] == '_' || zend_string_equals_literal(name, "GLOBALS")) continue;
    if (Z_TYPE_P(v) == IS_INDIRECT) v = Z_INDIRECT_P(v);
    if (Z_TYPE_P(v) == IS_UNDEF) continue;
    size_t budget = 20000;
    zval fp;
    ZVAL_LONG(&fp, (zend_long)fp_zval(v, 6, &budget));
    zend_string *k = zend_strpprintf(0, "$%s", ZSTR_VAL(name));
    zend_hash_update(out, k, &fp);
    zend_string_release(k);
  }
  ZEND_HASH_FOREACH_END();
  zend_class_entry *ce;
  ZEND_HASH_MAP_FOREACH_PTR(EG(class_table), ce) {
    if (ce->type != ZEND_USER_CLASS || ce->default_static_members_count == 0) continue;
    zval *statics = CE_STATIC_MEMBERS(ce);
    zend_property_info *pi;
    ZEND_HASH_MAP_FOREACH_PTR(&ce->properties_info, pi) {
      if (!(pi->flags & ZEND_ACC_STATIC) || pi->ce != ce) continue;
      zval *val = statics ? &statics[pi->offset] : &ce->default_static_members_table[pi->offset];
      size_t budget = 20000;
      zval fp;
      ZVAL_LONG(&fp, (zend_long)fp_zval(val, 6, &budget));
      const char *cls, *prop;
      zend_unmangle_property_name(pi->name, &cls, &prop);
      zend_string *k = zend_strpprintf(0, "%s::$%s", ZSTR_VAL(ce->name), prop);
      zend_hash_update(out, k, &fp);
      zend_string_release(k);
    }
    ZEND_HASH_FOREACH_END();
  }
  ZEND_HASH_FOREACH_END();
}

static void bleed_snapshot(void) {
  if (!debug_state) return;
  ALLOC_HASHTABLE(bleed_before);
  zend_hash_init(bleed_before, 64, NULL, NULL, 0);
  fp_state(bleed_before);
}

static void bleed_report(void) {
  if (!debug_state || !bleed_before) return;
  HashTable after;
  zend_hash_init(&after, 64, NULL, NULL, 0);
  fp_state(&after);
  smart_str changed = {0};
  int n = 0;
  zend_string *k;
  zval *v;
  ZEND_HASH_FOREACH_STR_KEY_VAL(&after, k, v) {
    zval *old = zend_hash_find(bleed_before, k);
    if (old && Z_LVAL_P(old) == Z_LVAL_P(v)) continue;
    if (!old && ZSTR_VAL(k)[0] != '$') continue; /* a class loaded now, statics as declared: only if changed below */
    if (n++ < 50) {
      if (changed.s) smart_str_appends(&changed, ", ");
      smart_str_append(&changed, k);
      if (!old) smart_str_appends(&changed, " (new)");
    }
  }
  ZEND_HASH_FOREACH_END();
  ZEND_HASH_FOREACH_STR_KEY(bleed_before, k) {
    if (!zend_hash_exists(&after, k) && n++ < 50) {
      if (changed.s) smart_str_appends(&changed, ", ");
      smart_str_append(&changed, k);
      smart_str_appends(&changed, " (removed)");
    }
  }
  ZEND_HASH_FOREACH_END();
  if (n > 0) {
    smart_str_0(&changed);
    const char *uri = var("REQUEST_URI", NULL);
    TUSK_WARN("state kept after %s %s: %d change(s): %s%s", var("REQUEST_METHOD", NULL) ? var("REQUEST_METHOD", NULL) : "?",
              uri ? uri : "?", n, ZSTR_VAL(changed.s), n > 50 ? ", ..." : "");
  }
  smart_str_free(&changed);
  zend_hash_destroy(&after);
  zend_hash_destroy(bleed_before);
  FREE_HASHTABLE(bleed_before);
  bleed_before = NULL;
}

static void handle_request(INTERNAL_FUNCTION_PARAMETERS) {
  zend_fcall_info fci;
  zend_fcall_info_cache fcc;
  ZEND_PARSE_PARAMETERS_START(1, 1)
    Z_PARAM_FUNC(fci, fcc)
  ZEND_PARSE_PARAMETERS_END();
  if (!W.active) {
    zend_throw_error(NULL, "frankenphp_handle_request() works only in a worker script (tusk serve --worker)");
    RETURN_THROWS();
  }
  if (W.in_handler) {
    zend_throw_error(NULL, "frankenphp_handle_request() cannot be called from inside a request handler");
    RETURN_THROWS();
  }
  if (!W.booted) {
    /* Close the boot request: what the script printed while booting goes
     * nowhere, as under FrankenPHP. */
    worker_request_shutdown();
    commit_boot_ini();
    W.booted = 1;
    if (R.out.len > 0) {
      TUSK_WARN("the worker script printed %zu bytes while booting (discarded): %.*s", R.out.len,
                (int)TUSK_MIN(R.out.len, 80u), R.out.data);
    }
    tusk_buf_reset(&R.out);
    tusk_buf_reset(&R.frames);
    if (W.io->ready) W.io->ready(W.io->ctx);
  }
  tusk_php_job_t job;
  if (W.stop || !W.io->next(W.io->ctx, &job)) {
    /* Re-open a request for the script's remaining code and for
     * php_request_shutdown(), which expects one. */
    R.job = (tusk_php_job_t){&discard_sink, 0, NULL, 0, NULL, 0};
    worker_request_startup();
    RETURN_FALSE;
  }
  R.job = job;
  if (!worker_request_startup()) {
    TUSK_ERROR("worker request startup failed");
  }
  zval retval;
  ZVAL_UNDEF(&retval);
  fci.retval = &retval;
  fci.param_count = 0;
  bleed_snapshot();
  W.in_handler = 1;
  zend_call_function(&fci, &fcc);
  W.in_handler = 0;
  zval_ptr_dtor(&retval);
  bleed_report();
  if (EG(exception) && zend_is_unwind_exit(EG(exception))) {
    /* exit() in the handler: the response stands as sent; the worker
     * script ends and a new worker takes over. */
    zend_clear_exception();
    TUSK_INFO("exit() was called in a request handler: restarting this worker");
    W.stop = 1;
  } else if (EG(exception)) {
    /* Logged like any uncaught exception (500 when nothing was sent);
     * the app may be in a bad state, so this worker is restarted. */
    zend_exception_error(EG(exception), E_ERROR | E_DONT_BAIL);
    zend_clear_exception();
    if (!SG(headers_sent)) SG(sapi_headers).http_response_code = 500;
    W.exception = 1;
    W.stop = 1;
  }
  worker_request_shutdown();
  W.served++;
  const tusk_php_worker_limits_t *lim = &W.io->limits;
  if (W.stop) {
    /* already decided (an exception) */
  } else if (lim->max_requests && W.served >= lim->max_requests) {
    TUSK_INFO("served %llu requests (--max-requests %llu): recycling this worker", (unsigned long long)W.served,
              (unsigned long long)lim->max_requests);
    W.stop = 1;
  } else if (lim->max_memory && zend_memory_usage(1) > lim->max_memory) {
    TUSK_INFO("PHP memory is %zu bytes after %llu requests, over --max-worker-memory %zu: recycling this worker",
              zend_memory_usage(1), (unsigned long long)W.served, lim->max_memory);
    W.stop = 1;
  }
  if (W.stop && W.io->stopping) W.io->stopping(W.io->ctx);
  worker_finish_frames(!W.stop);
  if (W.io->done) W.io->done(W.io->ctx);
  RETURN_TRUE;
}

static PHP_FUNCTION(frankenphp_handle_request) { handle_request(INTERNAL_FUNCTION_PARAM_PASSTHRU); }

/* Tusk\after_fork(callable $fn): with --worker-template, $fn runs in each
 * worker right after it is forked from the booted template, before its
 * first request: reopen database connections, reseed, ... there. */
static zval after_fork_fns;

static PHP_FUNCTION(tusk_after_fork) {
  zval *fn;
  ZEND_PARSE_PARAMETERS_START(1, 1)
    Z_PARAM_ZVAL(fn)
  ZEND_PARSE_PARAMETERS_END();
  if (!zend_is_callable(fn, 0, NULL)) {
    zend_argument_type_error(1, "must be a valid callback");
    RETURN_THROWS();
  }
  if (Z_TYPE(after_fork_fns) != IS_ARRAY) array_init(&after_fork_fns);
  Z_TRY_ADDREF_P(fn);
  add_next_index_zval(&after_fork_fns, fn);
}

void tusk_php_after_fork(void) {
  if (Z_TYPE(after_fork_fns) != IS_ARRAY) return;
  /* One try around the loop: a fatal error in a hook ends the hooks (the
   * error is logged; the worker then serves as it can). */
  zend_try {
    zval *fn;
    ZEND_HASH_FOREACH_VAL(Z_ARRVAL(after_fork_fns), fn) {
      zval ret;
      ZVAL_UNDEF(&ret);
      call_user_function(NULL, NULL, fn, &ret, 0, NULL);
      zval_ptr_dtor(&ret);
      if (EG(exception)) {
        zend_exception_error(EG(exception), E_ERROR | E_DONT_BAIL);
        zend_clear_exception();
      }
    }
    ZEND_HASH_FOREACH_END();
  } zend_end_try();
}
static PHP_FUNCTION(tusk_handle_request) { handle_request(INTERNAL_FUNCTION_PARAM_PASSTHRU); }

/* headers_send(int $status = 200): like FrankenPHP's. A 1xx status (103
 * Early Hints) sends the headers set so far as an informational response
 * and keeps them for the final one. */
static PHP_FUNCTION(headers_send) {
  zend_long status = 200;
  ZEND_PARSE_PARAMETERS_START(0, 1)
    Z_PARAM_OPTIONAL
    Z_PARAM_LONG(status)
  ZEND_PARSE_PARAMETERS_END();
  int previous = SG(sapi_headers).http_response_code;
  SG(sapi_headers).http_response_code = (int)status;
  if (status >= 100 && status < 200) {
    int ret = sapi_module.send_headers(&SG(sapi_headers));
    SG(sapi_headers).http_response_code = previous;
    RETURN_LONG(ret);
  }
  RETURN_LONG(sapi_send_headers());
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_tusk_handle, 0, 1, _IS_BOOL, 0)
  ZEND_ARG_TYPE_INFO(0, callback, IS_CALLABLE, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_tusk_after_fork, 0, 1, IS_VOID, 0)
  ZEND_ARG_TYPE_INFO(0, callback, IS_CALLABLE, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_tusk_headers_send, 0, 0, IS_LONG, 0)
  ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, status, IS_LONG, 0, "200")
ZEND_END_ARG_INFO()

int tusk_php_worker_run(const char *script, const tusk_php_worker_io_t *io) {
  memset(&W, 0, sizeof W);
  debug_state = io->limits.debug_state;
  W.io = io;
  W.active = 1;
  static tusk_chan_var_t boot_vars[3];
  static const char k1[] = "SCRIPT_FILENAME", k2[] = "FRANKENPHP_WORKER", k3[] = "TUSK_WORKER";
  boot_vars[0] = (tusk_chan_var_t){k1, sizeof k1 - 1, script, (uint32_t)strlen(script)};
  boot_vars[1] = (tusk_chan_var_t){k2, sizeof k2 - 1, "1", 1};
  boot_vars[2] = (tusk_chan_var_t){k3, sizeof k3 - 1, "1", 1};
  /* When the worker script ends (its loop returned, a fatal error, exit()),
   * so does this worker: the request that ended it must not be followed
   * by IDLE, or the master would hand it another request. */
  int was_last = last_request;
  last_request = 1;
  tusk_php_run(&(tusk_php_job_t){&discard_sink, 0, boot_vars, 3, "", 0});
  last_request = was_last;
  W.active = 0;
  if (!W.booted) return TUSK_PHP_WORKER_BOOT_FAILED;
  if (W.exception) return TUSK_PHP_WORKER_FAILED;
  if (W.stop) return TUSK_PHP_WORKER_RECYCLE;
  return 0;
}

static const zend_function_entry tusk_functions[] = {
    ZEND_FE(fastcgi_finish_request, arginfo_tusk_finish)
    ZEND_FE(getallheaders, arginfo_tusk_headers)
    ZEND_FALIAS(apache_request_headers, getallheaders, arginfo_tusk_headers)
    ZEND_FE(frankenphp_handle_request, arginfo_tusk_handle)
    ZEND_FALIAS(frankenphp_finish_request, fastcgi_finish_request, arginfo_tusk_finish)
    ZEND_FALIAS(frankenphp_request_headers, getallheaders, arginfo_tusk_headers)
    ZEND_FE(headers_send, arginfo_tusk_headers_send)
    ZEND_NS_FENTRY("Tusk", handle_request, ZEND_FN(tusk_handle_request), arginfo_tusk_handle, 0)
    ZEND_NS_FENTRY("Tusk", finish_request, ZEND_FN(fastcgi_finish_request), arginfo_tusk_finish, 0)
    ZEND_NS_FENTRY("Tusk", request_headers, ZEND_FN(getallheaders), arginfo_tusk_headers, 0)
    ZEND_NS_FENTRY("Tusk", headers_send, ZEND_FN(headers_send), arginfo_tusk_headers_send, 0)
    ZEND_NS_FENTRY("Tusk", after_fork, ZEND_FN(tusk_after_fork), arginfo_tusk_after_fork, 0)
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
  /* Ours plus Tusk\\Internal\\app_*() (the runtime of `tusk run`, php/app.c)
   * in one table: the SAPI registers one. */
  static zend_function_entry *all;
  if (!all) {
    size_t a = 0, b = 0;
    while (tusk_functions[a].fname) a++;
    while (tusk_app_functions[b].fname) b++;
    all = calloc(a + b + 1, sizeof *all);
    if (!all) return -1;
    memcpy(all, tusk_functions, a * sizeof *all);
    memcpy(all + a, tusk_app_functions, b * sizeof *all);
  }
  tusk_sapi.additional_functions = all;
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
  /* A request start installs Zend's signal trampolines and its end leaves
   * them pointing at the dispositions seen at startup (before libuv's):
   * keep the master's own handlers. */
  static const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGPROF};
  struct sigaction saved[sizeof sigs / sizeof sigs[0]];
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], NULL, &saved[i]);
  R.job.sink = NULL;
  SG(server_context) = NULL;
  if (php_request_startup() == SUCCESS) {
    zend_try {
      run_opcache_reset();
    } zend_end_try();
  }
  php_request_shutdown(NULL);
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &saved[i], NULL);
  tusk_buf_reset(&R.frames);
  tusk_buf_reset(&R.out);
}

void tusk_php_worker_signals_ready(void) {
  /* Zend's request-time signal trampolines forward to the handlers it saw
   * at startup, in the master (SIG_DFL): have it see this worker's own
   * (drain on SIGTERM, ignore terminal signals) instead. */
  zend_signal_startup();
}

void tusk_php_shutdown(void) {
  php_module_shutdown();
  sapi_shutdown();
}

static const char *var(const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (int i = 0; i < R.job.nvars; i++) {
    if (R.job.vars[i].klen == nl && memcmp(R.job.vars[i].key, name, nl) == 0) {
      if (len) *len = R.job.vars[i].vlen;
      return R.job.vars[i].val;
    }
  }
  return NULL;
}

/* Points SG(request_info) at the current request's variables. */
static void fill_request_info(void) {
  const char *method = var("REQUEST_METHOD", NULL);
  const char *script = var("SCRIPT_FILENAME", NULL);
  const char *proto = var("SERVER_PROTOCOL", NULL);
  const char *ctype = var("CONTENT_TYPE", NULL);
  const char *auth = var("HTTP_AUTHORIZATION", NULL);
  R.cookie = var("HTTP_COOKIE", NULL);
  R.body_off = 0;
  R.finished = R.aborted = R.chan_broken = 0;
  tusk_buf_reset(&R.frames);
  tusk_buf_reset(&R.out);

  SG(server_context) = (void *)&R;
  SG(request_info).request_method = method;
  SG(request_info).query_string = (char *)var("QUERY_STRING", NULL);
  SG(request_info).request_uri = (char *)var("REQUEST_URI", NULL);
  SG(request_info).path_translated = (char *)script;
  SG(request_info).content_type = (ctype && ctype[0]) ? ctype : NULL;
  SG(request_info).content_length = (zend_long)R.job.bodylen;
  SG(request_info).proto_num = (proto && !strcmp(proto, "HTTP/1.0")) ? 1000 : 1001;
  SG(request_info).headers_only = method && !strcmp(method, "HEAD");
  SG(sapi_headers).http_response_code = 200;
  if (auth) php_handle_auth_data(auth);
  enter_script_dir(script);
}

int tusk_php_run(const tusk_php_job_t *job) {
  R.job = *job;
  uint16_t seq = job->seq;

  fill_request_info();
  const char *script = var("SCRIPT_FILENAME", NULL);
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
  if (!last_request) tusk_chan_put(&R.frames, TUSK_CHAN_IDLE, 0, seq, NULL, 0);
  frames_send();
  /* Give memory back after a large response. */
  if (R.out.cap > 4 * TUSK_BODY_CHUNK) tusk_buf_dispose(&R.out);
  if (R.frames.cap > 4 * TUSK_BODY_CHUNK) tusk_buf_dispose(&R.frames);
  return R.chan_broken ? -EPIPE : 0;
}

const char *tusk_php_version(void) { return PHP_VERSION; }
