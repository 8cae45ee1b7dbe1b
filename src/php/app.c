/* Internal functions behind src/php/runtime/app.php (namespace
 * Tusk\Internal). See php/app.h for the frames. */
#include "php/app.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"
#include "php/sapi.h"
#include "proc/channel.h"

#include "php.h"
#include "SAPI.h"
#include "main/php_output.h"
#include "zend_exceptions.h"

static struct {
  int fd;
  int role;
  int stop;
  tusk_buf_t in, out;
} A = {-1, -1, 0};

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pf = {fd, POLLOUT, 0};
        poll(&pf, 1, 1000);
        continue;
      }
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void out_flush(void) {
  if (A.out.len && A.fd >= 0) {
    if (write_all(A.fd, A.out.data, A.out.len) != 0) A.stop = 1; /* the master is gone */
  }
  tusk_buf_reset(&A.out);
  if (A.out.cap > 1 << 20) tusk_buf_dispose(&A.out);
}

static void put(uint8_t type, uint16_t seq, uint64_t id, const char *data, size_t len) {
  tusk_chan_frame_t f = {(uint32_t)(8 + len), type, 0, seq};
  tusk_buf_append(&A.out, &f, sizeof f);
  tusk_buf_append(&A.out, &id, 8);
  if (len) tusk_buf_append(&A.out, data, len);
  if (A.out.len >= 256 * 1024) out_flush();
}

/* Makes what the script printed visible now (a long-running loop never
 * ends its "request"). */
static void output_flush(void) {
  if (OG(active)) php_output_flush_all();
  sapi_flush();
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_app_declare, 0, 1, IS_LONG, 0)
ZEND_ARG_TYPE_INFO(0, services, IS_ARRAY, 0)
ZEND_END_ARG_INFO()

/* Probe: sends the service list and returns -1. Worker: returns its number. */
PHP_FUNCTION(tusk_app_declare) {
  zval *arr;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_ARRAY(arr)
  ZEND_PARSE_PARAMETERS_END();
  if (A.role >= 0) {
    /* A long-running loop: no max_execution_time. */
    zend_string *k = zend_string_init("max_execution_time", sizeof "max_execution_time" - 1, 0);
    zend_alter_ini_entry_chars(k, "0", 1, PHP_INI_USER, PHP_INI_STAGE_RUNTIME);
    zend_string_release(k);
    RETURN_LONG(A.role);
  }
  /* Each service: u16 listen length, listen, u16 name length, name, u8 php
   * protocol, u32 max message size. */
  tusk_buf_t b;
  tusk_buf_init(&b);
  zval *svc;
  ZEND_HASH_FOREACH_VAL(Z_ARRVAL_P(arr), svc) {
    if (Z_TYPE_P(svc) != IS_ARRAY) continue;
    zval *l = zend_hash_index_find(Z_ARRVAL_P(svc), 0), *n = zend_hash_index_find(Z_ARRVAL_P(svc), 1);
    zval *p = zend_hash_index_find(Z_ARRVAL_P(svc), 2), *m = zend_hash_index_find(Z_ARRVAL_P(svc), 3);
    zend_string *ls = l ? zval_get_string(l) : ZSTR_EMPTY_ALLOC();
    zend_string *ns = n ? zval_get_string(n) : ZSTR_EMPTY_ALLOC();
    uint16_t ll = (uint16_t)TUSK_MIN(ZSTR_LEN(ls), 4096), nl = (uint16_t)TUSK_MIN(ZSTR_LEN(ns), 255);
    uint8_t php = p && zend_is_true(p);
    uint32_t max = m ? (uint32_t)TUSK_MAX(zval_get_long(m), 0) : 0;
    tusk_buf_append(&b, &ll, 2);
    tusk_buf_append(&b, ZSTR_VAL(ls), ll);
    tusk_buf_append(&b, &nl, 2);
    tusk_buf_append(&b, ZSTR_VAL(ns), nl);
    tusk_buf_append(&b, &php, 1);
    tusk_buf_append(&b, &max, 4);
    zend_string_release(ls);
    zend_string_release(ns);
  }
  ZEND_HASH_FOREACH_END();
  put(TUSK_APP_DECLARE, 0, 0, b.data, b.len);
  tusk_buf_dispose(&b);
  out_flush();
  RETURN_LONG(-1);
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_app_ready, 0, 0, IS_VOID, 0)
ZEND_END_ARG_INFO()

PHP_FUNCTION(tusk_app_ready) {
  ZEND_PARSE_PARAMETERS_NONE();
  put(TUSK_APP_READY, 0, 0, NULL, 0);
  output_flush();
  out_flush();
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_app_cmd, 0, 3, IS_VOID, 0)
ZEND_ARG_TYPE_INFO(0, type, IS_LONG, 0)
ZEND_ARG_TYPE_INFO(0, id, IS_LONG, 0)
ZEND_ARG_TYPE_INFO(0, data, IS_STRING, 0)
ZEND_END_ARG_INFO()

PHP_FUNCTION(tusk_app_cmd) {
  zend_long type, id;
  zend_string *data;
  ZEND_PARSE_PARAMETERS_START(3, 3)
  Z_PARAM_LONG(type)
  Z_PARAM_LONG(id)
  Z_PARAM_STR(data)
  ZEND_PARSE_PARAMETERS_END();
  if (type < TUSK_APP_CMD_SEND || type > TUSK_APP_CMD_SEND_BIN || A.fd < 0) return;
  put((uint8_t)type, 0, (uint64_t)id, ZSTR_VAL(data), ZSTR_LEN(data));
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_app_wait, 0, 1, IS_ARRAY, 1)
ZEND_ARG_TYPE_INFO(0, timeout_ms, IS_LONG, 0)
ZEND_END_ARG_INFO()

/* Sends what is queued, then waits up to timeout_ms (-1: no limit) for
 * events; returns them as [type, id, service, data, flags] lists (maybe none), or
 * null when the worker must stop. */
PHP_FUNCTION(tusk_app_wait) {
  zend_long timeout;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_LONG(timeout)
  ZEND_PARSE_PARAMETERS_END();
  output_flush();
  out_flush();
  if (A.stop || A.fd < 0) RETURN_NULL();
  array_init(return_value);
  int waited = 0;
  for (;;) {
    size_t off = 0;
    int got = 0;
    for (;;) {
      tusk_chan_frame_t f;
      const char *payload;
      int n = tusk_chan_get(A.in.data + off, A.in.len - off, &f, &payload);
      if (n == TUSK_AGAIN) break;
      if (n < 0 || f.len < 8) {
        A.stop = 1;
        break;
      }
      off += (size_t)n;
      if (f.type == TUSK_APP_EV_STOP) {
        A.stop = 1;
        break;
      }
      uint64_t id;
      memcpy(&id, payload, 8);
      zval ev;
      array_init_size(&ev, 5);
      add_next_index_long(&ev, f.type);
      add_next_index_long(&ev, (zend_long)id);
      add_next_index_long(&ev, f.seq);
      add_next_index_stringl(&ev, payload + 8, f.len - 8);
      add_next_index_long(&ev, f.flags); /* EV_DATA of a websocket: 1 for a binary message */
      add_next_index_zval(return_value, &ev);
      got++;
    }
    tusk_buf_consume(&A.in, off);
    if (got || A.stop || waited) break;
    struct pollfd pf = {A.fd, POLLIN, 0};
    int pr = poll(&pf, 1, timeout < 0 ? -1 : (int)TUSK_MIN(timeout, INT32_MAX));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) break; /* timed out: the timers are due */
    if (tusk_buf_reserve(&A.in, 256 * 1024) != 0) break;
    ssize_t r = read(A.fd, A.in.data + A.in.len, A.in.cap - A.in.len);
    if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
      A.stop = 1;
      break;
    }
    if (r > 0) A.in.len += (size_t)r;
    /* One read may hold a partial frame: read again without waiting. */
    timeout = 0;
    waited = r > 0 && A.in.len >= TUSK_CHAN_HDR ? 0 : 1;
  }
  if (zend_hash_num_elements(Z_ARRVAL_P(return_value)) == 0 && A.stop) {
    zval_ptr_dtor(return_value);
    RETURN_NULL();
  }
}

const zend_function_entry tusk_app_functions[] = {
    ZEND_NS_FENTRY("Tusk\\Internal", app_declare, ZEND_FN(tusk_app_declare), arginfo_app_declare, 0)
    ZEND_NS_FENTRY("Tusk\\Internal", app_ready, ZEND_FN(tusk_app_ready), arginfo_app_ready, 0)
    ZEND_NS_FENTRY("Tusk\\Internal", app_cmd, ZEND_FN(tusk_app_cmd), arginfo_app_cmd, 0)
    ZEND_NS_FENTRY("Tusk\\Internal", app_wait, ZEND_FN(tusk_app_wait), arginfo_app_wait, 0)
    ZEND_FE_END};

/* The script's output goes to stdout (BODY frames); the rest is dropped. */
static int stdout_write(void *ctx, const char *frames, size_t len) {
  size_t off = 0;
  while (off < len) {
    tusk_chan_frame_t f;
    const char *payload;
    int n = tusk_chan_get(frames + off, len - off, &f, &payload);
    if (n < 0) break;
    if (f.type == TUSK_CHAN_BODY && f.len > 0) write_all(1, payload, f.len);
    off += (size_t)n;
  }
  return 0;
}
static int never_aborted(void *ctx, uint16_t seq) { return 0; }
static const tusk_php_sink_t stdout_sink = {stdout_write, never_aborted, NULL};

int tusk_php_app_run(const char *runtime, const char *script, int fd, int role) {
  A.fd = fd;
  A.role = role;
  A.stop = 0;
  tusk_buf_init(&A.in);
  tusk_buf_init(&A.out);
  static tusk_chan_var_t vars[3];
  static const char k1[] = "SCRIPT_FILENAME", k2[] = "TUSK_APP_SCRIPT", k3[] = "TUSK_APP_ROLE";
  char rolestr[16];
  snprintf(rolestr, sizeof rolestr, "%d", role);
  vars[0] = (tusk_chan_var_t){k1, sizeof k1 - 1, runtime, (uint32_t)strlen(runtime)};
  vars[1] = (tusk_chan_var_t){k2, sizeof k2 - 1, script, (uint32_t)strlen(script)};
  vars[2] = (tusk_chan_var_t){k3, sizeof k3 - 1, rolestr, (uint32_t)strlen(rolestr)};
  tusk_php_set_last_request(1);
  tusk_php_run(&(tusk_php_job_t){&stdout_sink, 0, vars, 3, "", 0});
  out_flush();
  return EG(exit_status); /* 255 after a fatal error or an uncaught exception, as the CLI */
}
