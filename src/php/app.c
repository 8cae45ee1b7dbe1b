/* Internal functions behind src/php/runtime/app.php (namespace
 * Tusk\Internal). See php/app.h for the frames. */
#include "php/app.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
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
  const tusk_app_local_t *local; /* direct mode: this process's own loop */
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
  if (A.out.len && A.local) {
    /* The commands may queue more (an event loop turn does not run here). */
    tusk_buf_t cmds = A.out;
    tusk_buf_init(&A.out);
    A.local->commands(cmds.data, cmds.len);
    tusk_buf_dispose(&cmds);
    return;
  }
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
   * protocol, u32 max message size, u16 origins length, allowed origins
   * (newline separated). */
  tusk_buf_t b;
  tusk_buf_init(&b);
  zval *svc;
  ZEND_HASH_FOREACH_VAL(Z_ARRVAL_P(arr), svc) {
    if (Z_TYPE_P(svc) != IS_ARRAY) continue;
    zval *l = zend_hash_index_find(Z_ARRVAL_P(svc), 0), *n = zend_hash_index_find(Z_ARRVAL_P(svc), 1);
    zval *p = zend_hash_index_find(Z_ARRVAL_P(svc), 2), *m = zend_hash_index_find(Z_ARRVAL_P(svc), 3);
    zval *o = zend_hash_index_find(Z_ARRVAL_P(svc), 4);
    zend_string *os = o ? zval_get_string(o) : ZSTR_EMPTY_ALLOC();
    uint16_t ol = (uint16_t)TUSK_MIN(ZSTR_LEN(os), 2047);
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
    tusk_buf_append(&b, &ol, 2);
    tusk_buf_append(&b, ZSTR_VAL(os), ol);
    zend_string_release(os);
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
  if (type < TUSK_APP_CMD_SEND || type > TUSK_APP_CMD_SENDTO || A.fd < 0) return;
  put((uint8_t)type, 0, (uint64_t)id, ZSTR_VAL(data), ZSTR_LEN(data));
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_app_wait, 0, 1, IS_ARRAY, 1)
ZEND_ARG_TYPE_INFO(0, timeout_ms, IS_LONG, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, read, IS_ARRAY, 0, "[]")
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, write, IS_ARRAY, 0, "[]")
ZEND_END_ARG_INFO()

#define MAX_WATCH 1024

/* The descriptors of the PHP streams in arr (async clients) into pf from
 * *n on; keys[] gets each one's array key. */
static void watch_streams(zval *arr, short events, struct pollfd *pf, zend_long *keys, char *pre, int *n) {
  if (!arr) return;
  zend_ulong idx;
  zval *zv;
  ZEND_HASH_FOREACH_NUM_KEY_VAL(Z_ARRVAL_P(arr), idx, zv) {
    if (*n >= MAX_WATCH) break;
    php_stream *stream = NULL;
    if (Z_TYPE_P(zv) == IS_RESOURCE) php_stream_from_zval_no_verify(stream, zv);
    if (!stream) continue;
    int fd = -1;
    if (php_stream_cast(stream, PHP_STREAM_AS_FD_FOR_SELECT | PHP_STREAM_CAST_INTERNAL, (void **)&fd, 1) != SUCCESS ||
        fd < 0)
      continue;
    /* Bytes PHP already buffered count as readable. */
    pf[*n] = (struct pollfd){fd, events, 0};
    pre[*n] = (events & POLLIN) && stream->writepos > stream->readpos;
    keys[*n] = (zend_long)idx;
    (*n)++;
  }
  ZEND_HASH_FOREACH_END();
}

/* Async client streams after a poll() that returned >= 0: one event each
 * that is ready, [30 readable | 31 writable, key, 0, "", 0] (bytes PHP
 * already buffered count as readable). Returns how many. */
static int stream_events(zval *out, struct pollfd *pf, int nw, int nr_end, const zend_long *keys, const char *pre) {
  int got = 0;
  for (int i = 1; i < nw; i++) {
    if (pre[i]) pf[i].revents |= POLLIN;
    if (!pf[i].revents) continue;
    zval ev;
    array_init_size(&ev, 5);
    add_next_index_long(&ev, i < nr_end ? 30 : 31);
    add_next_index_long(&ev, keys[i]);
    add_next_index_long(&ev, 0);
    add_next_index_stringl(&ev, "", 0);
    add_next_index_long(&ev, 0);
    add_next_index_zval(out, &ev);
    got++;
  }
  return got;
}

/* Sends what is queued, then waits up to timeout_ms (-1: no limit) for
 * events; returns them as [type, id, service, data, flags] lists (maybe none), or
 * null when the worker must stop. */
PHP_FUNCTION(tusk_app_wait) {
  zend_long timeout;
  zval *rd = NULL, *wr = NULL;
  ZEND_PARSE_PARAMETERS_START(1, 3)
  Z_PARAM_LONG(timeout)
  Z_PARAM_OPTIONAL
  Z_PARAM_ARRAY(rd)
  Z_PARAM_ARRAY(wr)
  ZEND_PARSE_PARAMETERS_END();
  static struct pollfd pf[1 + 2 * MAX_WATCH];
  static zend_long keys[1 + 2 * MAX_WATCH];
  static char pre[1 + 2 * MAX_WATCH];
  int nw = 1, nr_end;
  watch_streams(rd, POLLIN, pf, keys, pre, &nw);
  nr_end = nw;
  watch_streams(wr, POLLOUT, pf, keys, pre, &nw);
  for (int i = 1; i < nw; i++) {
    if (pre[i]) timeout = 0;
  }
  output_flush();
  out_flush();
  if (A.stop || A.fd < 0) RETURN_NULL();
  array_init(return_value);
  int waited = 0;
  struct timespec t0, now;
  if (A.local) {
    if (timeout > 0) clock_gettime(CLOCK_MONOTONIC, &t0);
    A.local->take(&A.in); /* what the commands above caused (a close: its CLOSE event) */
  }
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
    if (A.local) {
      int left = timeout < 0 ? -1 : (int)TUSK_MIN(timeout, INT32_MAX);
      if (left > 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t spent = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        left = spent >= left ? 0 : (int)(left - spent);
      }
      int expired;
      if (nw > 1) {
        /* Async client streams beside the loop: poll both, then turn the loop. */
        int bt = A.local->backend_timeout();
        pf[0] = (struct pollfd){A.local->backend_fd(), POLLIN, 0};
        int t = left < 0 ? bt : bt < 0 ? left : TUSK_MIN(left, bt);
        int pr = poll(pf, (nfds_t)nw, t);
        if (pr < 0 && errno == EINTR) continue;
        if (pr >= 0) got += stream_events(return_value, pf, nw, nr_end, keys, pre);
        nw = 1;
        A.local->run(0);
        expired = pr == 0 && t == left;
      } else {
        expired = A.local->run(left);
      }
      A.local->take(&A.in);
      if (got || (expired && A.in.len == 0)) {
        if (A.in.len == 0) break;
        waited = 1; /* parse what came, then return */
      }
      continue;
    }
    pf[0] = (struct pollfd){A.fd, POLLIN, 0};
    int pr = poll(pf, (nfds_t)nw, timeout < 0 ? -1 : (int)TUSK_MIN(timeout, INT32_MAX));
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) break;
    got += stream_events(return_value, pf, nw, nr_end, keys, pre);
    nw = 1; /* the streams are reported once per call */
    if (pr == 0 || !(pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      if (got || pr == 0) break; /* streams are ready, or the timers are due */
      continue;
    }
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

/* ---- pushing from any PHP process ------------------------------------------------- */

static int push_fd = -1;
static char push_path[108];

/* Sends one command frame: on this process's channel inside `tusk run`,
 * else to the control socket of the `tusk run` at path (or
 * $TUSK_APP_SOCKET). Returns 0 or -1 (with a PHP warning). */
static int push(uint8_t type, const char *path, const char *data, size_t len) {
  if (A.fd >= 0) {
    put(type, 0, type == TUSK_APP_CMD_BCAST ? 0xffff : 0, data, len);
    return 0;
  }
  if (!path || !path[0]) path = getenv("TUSK_APP_SOCKET");
  if (!path || !path[0]) {
    php_error_docref(NULL, E_WARNING, "no `tusk run` to send to: pass its control socket or set TUSK_APP_SOCKET");
    return -1;
  }
  tusk_buf_t b;
  tusk_buf_init(&b);
  uint64_t id = type == TUSK_APP_CMD_BCAST ? 0xffff : 0;
  tusk_chan_frame_t f = {(uint32_t)(8 + len), type, 0, 0};
  tusk_buf_append(&b, &f, sizeof f);
  tusk_buf_append(&b, &id, 8);
  tusk_buf_append(&b, data, len);
  int rc = -1;
  for (int attempt = 0; attempt < 2 && rc != 0; attempt++) {
    if (push_fd < 0 || strcmp(push_path, path) != 0) {
      if (push_fd >= 0) close(push_fd);
      push_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      struct sockaddr_un un;
      memset(&un, 0, sizeof un);
      un.sun_family = AF_UNIX;
      snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
      if (push_fd < 0 || connect(push_fd, (struct sockaddr *)&un, sizeof un) != 0) {
        php_error_docref(NULL, E_WARNING, "cannot reach the `tusk run` control socket %s: %s", path, strerror(errno));
        if (push_fd >= 0) close(push_fd);
        push_fd = -1;
        break;
      }
      snprintf(push_path, sizeof push_path, "%s", path);
    }
    /* A stale connection (the master restarted) fails: reconnect once. */
    rc = send(push_fd, b.data, b.len, MSG_NOSIGNAL) == (ssize_t)b.len ? 0 : -1;
    if (rc != 0) {
      close(push_fd);
      push_fd = -1;
    }
  }
  tusk_buf_dispose(&b);
  return rc;
}

static void push_named(INTERNAL_FUNCTION_PARAMETERS, uint8_t type) {
  zend_string *to, *msg, *path = NULL;
  ZEND_PARSE_PARAMETERS_START(2, 3)
  Z_PARAM_STR(to)
  Z_PARAM_STR(msg)
  Z_PARAM_OPTIONAL
  Z_PARAM_STR_OR_NULL(path)
  ZEND_PARSE_PARAMETERS_END();
  if (ZSTR_LEN(to) == 0 || ZSTR_LEN(to) > 255) {
    zend_argument_value_error(1, "must be 1 to 255 bytes");
    RETURN_THROWS();
  }
  tusk_buf_t b;
  tusk_buf_init(&b);
  unsigned char l[2] = {(unsigned char)(ZSTR_LEN(to) >> 8), (unsigned char)ZSTR_LEN(to)};
  tusk_buf_append(&b, l, 2);
  tusk_buf_append(&b, ZSTR_VAL(to), ZSTR_LEN(to));
  tusk_buf_append(&b, ZSTR_VAL(msg), ZSTR_LEN(msg));
  int rc = push(type, path ? ZSTR_VAL(path) : NULL, b.data, b.len);
  tusk_buf_dispose(&b);
  RETURN_BOOL(rc == 0);
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_push_named, 0, 2, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO(0, to, IS_STRING, 0)
ZEND_ARG_TYPE_INFO(0, message, IS_STRING, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, app_socket, IS_STRING, 1, "null")
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_push_all, 0, 1, _IS_BOOL, 0)
ZEND_ARG_TYPE_INFO(0, message, IS_STRING, 0)
ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, app_socket, IS_STRING, 1, "null")
ZEND_END_ARG_INFO()

/* Tusk\send_to_group(string $group, string $message, ?string $appSocket = null): bool */
PHP_FUNCTION(tusk_send_to_group) { push_named(INTERNAL_FUNCTION_PARAM_PASSTHRU, TUSK_APP_CMD_SEND_GROUP); }
/* Tusk\send_to_uid(string $uid, string $message, ?string $appSocket = null): bool */
PHP_FUNCTION(tusk_send_to_uid) { push_named(INTERNAL_FUNCTION_PARAM_PASSTHRU, TUSK_APP_CMD_SEND_UID); }
/* Tusk\broadcast(string $message, ?string $appSocket = null): bool */
PHP_FUNCTION(tusk_broadcast) {
  zend_string *msg, *path = NULL;
  ZEND_PARSE_PARAMETERS_START(1, 2)
  Z_PARAM_STR(msg)
  Z_PARAM_OPTIONAL
  Z_PARAM_STR_OR_NULL(path)
  ZEND_PARSE_PARAMETERS_END();
  RETURN_BOOL(push(TUSK_APP_CMD_BCAST, path ? ZSTR_VAL(path) : NULL, ZSTR_VAL(msg), ZSTR_LEN(msg)) == 0);
}

const zend_function_entry tusk_app_functions[] = {
    ZEND_NS_FENTRY("Tusk", send_to_group, ZEND_FN(tusk_send_to_group), arginfo_push_named, 0)
    ZEND_NS_FENTRY("Tusk", send_to_uid, ZEND_FN(tusk_send_to_uid), arginfo_push_named, 0)
    ZEND_NS_FENTRY("Tusk", broadcast, ZEND_FN(tusk_broadcast), arginfo_push_all, 0)
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

int tusk_php_app_run(const char *runtime, const char *script, int fd, int role, const tusk_app_local_t *local) {
  A.fd = fd;
  A.local = local;
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
