#include "http/h1_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "core/common.h"
#include "core/log.h"
#include "http/compress.h"
#include "net/tls.h"
#include "http/h2_conn.h"
#include "http/request.h"
#include "http/response.h"
#include "proc/channel.h"

enum { ST_HEAD = 0, ST_BODY, ST_PHP, ST_WRITE, ST_LINGER };
enum { TM_NONE = 0, TM_IDLE, TM_HEADER, TM_BODY, TM_LINGER };

#define SMALL_FILE (64 * 1024)
#define FILE_CHUNK (256 * 1024)
#define MAX_PIPELINE_BUFFER (64 * 1024)
#define CONN_OF(j) ((tusk_h1_conn_t *)((char *)(j) - offsetof(tusk_h1_conn_t, job)))

typedef struct wreq_s {
  uv_write_t w;
  tusk_buf_t buf;
  tusk_h1_conn_t *c;
} wreq_t;

static void conn_close(tusk_h1_conn_t *c);
static void process(tusk_h1_conn_t *c);
static void h2_input(tusk_h1_conn_t *c);
static void static_pump(tusk_h1_conn_t *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void tusk__h1_write_and_close(tusk_h1_conn_t *c, tusk_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static uint64_t now_ms(tusk_h1_conn_t *c) { return uv_now(c->ctx->loop); }

/* ---- timers -------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  tusk_h1_conn_t *c = t->data;
  if (c->closing) return;
  if (c->h2) {
    /* Streams waiting for PHP keep the connection; an idle one says
     * GOAWAY before closing (RFC 9113 9.1), so that the client knows no
     * request of its was lost, and is closed if still there 2 s later. */
    uint64_t idle_ms = (uint64_t)(c->ctx->conf->idle_timeout * 1000), quiet = now_ms(c) - c->active_ms;
    if (c->state == ST_LINGER || (tusk_h2_idle(c->h2) && tusk_h2_draining(c->h2))) {
      conn_close(c);
    } else if (tusk_h2_idle(c->h2) && quiet >= idle_ms) {
      tusk_h2_drain(c->h2);
      if (!c->closing && c->state != ST_LINGER) uv_timer_start(&c->timer, on_timer, 2000, 0);
    } else {
      /* Busy, or idle for less than --idle-timeout (the timer also runs
       * for SSE keep-alives): quiet event streams get their comment. */
      uint64_t next = tusk_h2_idle(c->h2) ? idle_ms - quiet : idle_ms;
      int64_t sse = tusk_h2_sse_keepalive(c->h2);
      if (sse >= 0 && (uint64_t)sse < next) next = (uint64_t)sse;
      if (!c->closing) uv_timer_start(&c->timer, on_timer, next ? next : 1, 0);
    }
    return;
  }
  switch (c->state) {
    case ST_HEAD:
      if (c->in.len == 0) {
        conn_close(c); /* idle keep-alive connection */
        return;
      }
      TUSK_INFO("%s:%d: 408 request head not received within --header-timeout", c->remote_addr, c->remote_port);
      break;
    case ST_BODY:
      TUSK_INFO("%s:%d: 408 request body stalled past --body-timeout", c->remote_addr, c->remote_port);
      break;
    default:
      conn_close(c);
      return;
  }
  /* 408 and close. */
  c->keep_alive = 0;
  c->state = ST_WRITE;
  tusk_buf_t b;
  tusk_buf_init(&b);
  tusk_buf_t body;
  tusk_buf_init(&body);
  tusk_http_error_body(&body, 408);
  tusk_buf_printf(&b,
                  "HTTP/1.1 408 Request Timeout\r\nServer: tusk\r\nDate: %s\r\nContent-Type: "
                  "text/html\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                  tusk_http_date_now(), body.len);
  tusk_buf_append(&b, body.data, body.len);
  tusk_buf_dispose(&body);
  c->status = 408;
  tusk__h1_write_and_close(c, &b);
}

void tusk__conn_timer_within(tusk_h1_conn_t *c, uint64_t ms) {
  if (c->closing) return;
  if (!uv_is_active((uv_handle_t *)&c->timer) || uv_timer_get_due_in(&c->timer) > ms)
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void arm(tusk_h1_conn_t *c, double secs) {
  if (c->closing) return;
  if (secs <= 0) {
    uv_timer_stop(&c->timer);
    return;
  }
  uv_timer_start(&c->timer, on_timer, (uint64_t)(secs * 1000.0), 0);
}

/* One line a second at most: an overload must not also flood the log. */
void tusk__http_warn_queue_full(tusk_http_ctx_t *ctx, const char *what) {
  static uint64_t last;
  static unsigned quiet;
  uint64_t now = uv_now(ctx->loop);
  if (last && now - last < 1000) {
    quiet++;
    return;
  }
  if (quiet) TUSK_WARN("all PHP workers are busy and the queue is full: 503 for %s (and %u more 503s in the last second(s))", what, quiet);
  else TUSK_WARN("all PHP workers are busy and the queue is full: 503 for %s", what);
  last = now;
  quiet = 0;
}

/* ---- writing --------------------------------------------------------------- */

static void after_writes(tusk_h1_conn_t *c);

static void on_write(uv_write_t *w, int status) {
  wreq_t *r = (wreq_t *)w;
  tusk_h1_conn_t *c = r->c;
  tusk_buf_dispose(&r->buf);
  free(r);
  c->writes_pending--;
  if (status < 0) {
    if (!c->closing) conn_close(c);
    return;
  }
  if (!c->closing) after_writes(c);
}

static void raw_write(tusk_h1_conn_t *c, tusk_buf_t *b);

/* Writes b (taking its storage) to the client, encrypted on TLS. */
static void conn_write(tusk_h1_conn_t *c, tusk_buf_t *b) {
  if (c->tls && !c->closing && b->len > 0) {
    tusk_buf_t z;
    tusk_buf_init(&z);
    int rc = tusk_tls_conn_write(c->tls, b->data, b->len, &z);
    tusk_buf_dispose(b);
    if (rc != 0) {
      tusk_buf_dispose(&z);
      conn_close(c);
      return;
    }
    raw_write(c, &z);
    return;
  }
  raw_write(c, b);
}

static void raw_write(tusk_h1_conn_t *c, tusk_buf_t *b) {
  if (c->closing || b->len == 0) {
    tusk_buf_dispose(b);
    return;
  }
  size_t off = 0;
  if (c->writes_pending == 0) {
    uv_buf_t ub = uv_buf_init(b->data, (unsigned)b->len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
    if (n == (int)b->len) {
      tusk_buf_dispose(b);
      return;
    }
    if (n > 0) off = (size_t)n;
    else if (n != UV_EAGAIN) {
      tusk_buf_dispose(b);
      conn_close(c);
      return;
    }
  }
  wreq_t *r = malloc(sizeof *r);
  if (!r) {
    tusk_buf_dispose(b);
    conn_close(c);
    return;
  }
  r->c = c;
  r->buf = *b;
  tusk_buf_init(b);
  uv_buf_t ub = uv_buf_init(r->buf.data + off, (unsigned)(r->buf.len - off));
  c->writes_pending++;
  if (uv_write(&r->w, (uv_stream_t *)&c->tcp, &ub, 1, on_write) != 0) {
    c->writes_pending--;
    tusk_buf_dispose(&r->buf);
    free(r);
    conn_close(c);
  }
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  tusk_h1_conn_t *c = req->data;
  free(req);
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  /* Lingering close: read and drop what the client still sends, so that
   * our response is not destroyed by a reset. */
  c->state = ST_LINGER;
  uv_timer_start(&c->timer, on_timer, 2000, 0);
}

static void start_close(tusk_h1_conn_t *c) {
  if (c->closing || c->state == ST_LINGER) return;
  if (c->tls && c->tls_ready) {
    tusk_buf_t z;
    tusk_buf_init(&z);
    tusk_tls_conn_shutdown(c->tls, &z); /* close_notify */
    raw_write(c, &z);
    if (c->closing) return;
  }
  uv_shutdown_t *s = malloc(sizeof *s);
  if (!s || (s->data = c, uv_shutdown(s, (uv_stream_t *)&c->tcp, on_shutdown)) != 0) {
    free(s);
    conn_close(c);
    return;
  }
  c->state = ST_LINGER;
}

static void after_writes(tusk_h1_conn_t *c) {
  if (c->h2) {
    if (c->writes_pending == 0 && !c->close_after_write) tusk_h2_flush(c->h2);
    if (!c->closing && c->close_after_write && c->writes_pending == 0) start_close(c);
    return;
  }
  if (c->file_fd >= 0 && c->writes_pending == 0) {
    int was_streaming_file = c->state == ST_WRITE;
    static_pump(c);
    /* The file is done: pipelined requests may be waiting. */
    if (was_streaming_file && !c->closing && c->state == ST_HEAD && c->in.len > 0) process(c);
    return;
  }
  if (c->close_after_write && c->writes_pending == 0 && c->file_left == 0) start_close(c);
}

void tusk__conn_write(tusk_h1_conn_t *c, tusk_buf_t *b) { conn_write(c, b); }

void tusk__conn_close_after_writes(tusk_h1_conn_t *c) {
  if (c->closing) return;
  c->close_after_write = 1;
  after_writes(c);
}

void tusk__conn_tls_info(tusk_h1_conn_t *c, const char **version, const char **cipher, const char **sni) {
  *version = *cipher = *sni = NULL;
  if (!c->tls || !c->tls_ready) return;
  *version = tusk_tls_conn_version(c->tls);
  *cipher = tusk_tls_conn_cipher(c->tls);
  *sni = tusk_tls_conn_sni(c->tls);
}

void tusk__h1_write_and_close(tusk_h1_conn_t *c, tusk_buf_t *b) {
  c->close_after_write = 1;
  conn_write(c, b);
  if (!c->closing) after_writes(c);
}

/* ---- request lifecycle ------------------------------------------------------ */

static void access_log(tusk_h1_conn_t *c) {
  FILE *f = c->ctx->access_log;
  if (!f) return;
  char date[32];
  tusk_http_date_format(time(NULL), date);
  const tusk_h1_header_t *ref = tusk_h1_find_header(&c->req, "Referer");
  const tusk_h1_header_t *ua = tusk_h1_find_header(&c->req, "User-Agent");
  fprintf(f, "%s - - [%s] \"%.*s %.*s HTTP/1.%d\" %d %llu \"%.*s\" \"%.*s\" %llums\n", c->remote_addr,
          date, (int)c->req.method_len, c->req.method, (int)c->req.target_len, c->req.target,
          c->req.version_minor, c->status, (unsigned long long)c->sent, ref ? (int)ref->value_len : 1,
          ref ? ref->value : "-", ua ? (int)ua->value_len : 1, ua ? ua->value : "-",
          (unsigned long long)(now_ms(c) - c->started_ms));
  fflush(f);
}

/* The whole response has been handed to libuv. */
static void finish_request(tusk_h1_conn_t *c) {
  access_log(c);
  c->served++;
  free((void *)c->req.method); /* the copied head, see copy_head() */
  memset(&c->req, 0, sizeof c->req);
  c->req.headers = c->headers;
  tusk_buf_reset(&c->body);
  if (c->body.cap > 1024 * 1024) tusk_buf_dispose(&c->body);
  tusk_buf_dispose(&c->php_head);
  tusk_buf_reset(&c->php_body);
  if (c->php_body.cap > 1024 * 1024) tusk_buf_dispose(&c->php_body);
  c->streaming = 0;
  tusk_encoder_destroy(c->enc);
  c->enc = NULL;
  c->enc_kind = 0;
  c->sent_continue = 0;
  c->sent = 0;
  c->status = 0;
  c->head_len = 0;
  c->started_ms = 0;
  if (!c->keep_alive || c->ctx->draining) {
    c->close_after_write = 1;
    c->state = ST_WRITE;
    after_writes(c);
    return;
  }
  c->state = ST_HEAD;
  if (c->read_stopped) {
    c->read_stopped = 0;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  }
}

static void respond_simple(tusk_h1_conn_t *c, int status, const char *extra_headers, int close) {
  tusk_buf_t b, body;
  tusk_buf_init(&b);
  tusk_buf_init(&body);
  if (status >= 400 && !c->is_head) tusk_http_error_body(&body, status);
  if (close) c->keep_alive = 0;
  tusk_buf_printf(&b, "HTTP/1.1 %d %s\r\nServer: tusk\r\nDate: %s\r\n%s", status, tusk_http_reason(status),
                  tusk_http_date_now(), extra_headers ? extra_headers : "");
  if (status >= 400) tusk_buf_append_str(&b, "Content-Type: text/html; charset=utf-8\r\n");
  if (status != 204 && status != 304) {
    size_t len = body.len;
    if (c->is_head && status >= 400) {
      tusk_buf_t tmp;
      tusk_buf_init(&tmp);
      tusk_http_error_body(&tmp, status);
      len = tmp.len;
      tusk_buf_dispose(&tmp);
    }
    tusk_buf_printf(&b, "Content-Length: %zu\r\n", len);
  }
  if (!c->keep_alive) tusk_buf_append_str(&b, "Connection: close\r\n");
  else if (c->req.version_minor == 0) tusk_buf_append_str(&b, "Connection: keep-alive\r\n");
  tusk_buf_append(&b, "\r\n", 2);
  tusk_buf_append(&b, body.data, body.len);
  c->status = status;
  c->sent = body.len;
  tusk_buf_dispose(&body);
  c->state = ST_WRITE;
  conn_write(c, &b);
  if (!c->closing) finish_request(c);
}

/* Rejects a request whose head could not be parsed: answer and close. */
static void reject(tusk_h1_conn_t *c, int status, const char *why) {
  TUSK_INFO("%s:%d: %d %s (%s)", c->remote_addr, c->remote_port, status, tusk_http_reason(status), why);
  if (!c->req.method) {
    c->req.method = strdup("-");
    c->req.method_len = 1;
    c->req.target = "-";
    c->req.target_len = 1;
    c->req.version_minor = 1;
  }
  respond_simple(c, status, NULL, 1);
}

/* Copies the parsed head out of the input buffer (which may move as more
 * bytes arrive) and rebases the parser's pointers onto the copy. The copy
 * is one allocation whose start is c->req.method. */
static int copy_head(tusk_h1_conn_t *c) {
  char *copy = malloc(c->head_len + 1);
  if (!copy) return TUSK_ENOMEM;
  memcpy(copy, c->in.data, c->head_len);
  copy[c->head_len] = '\0';
  ptrdiff_t d = copy - c->in.data;
#define REBASE(p) \
  if (p) p = (const char *)((p) + d)
  REBASE(c->req.method);
  REBASE(c->req.target);
  REBASE(c->req.host);
  for (size_t i = 0; i < c->req.num_headers; i++) {
    REBASE(c->headers[i].name);
    REBASE(c->headers[i].value);
  }
#undef REBASE
  /* method is the first byte of the head only if no empty lines preceded it;
   * keep the allocation start in method by construction below. */
  if (c->req.method != copy) {
    /* Leading CRLFs were skipped: keep the pointer to free in a header-less
     * way by moving the method to the start. */
    size_t skip = (size_t)(c->req.method - copy);
    memmove(copy, copy + skip, c->head_len - skip + 1);
    ptrdiff_t d2 = -(ptrdiff_t)skip;
    c->req.method += d2;
    c->req.target += d2;
    if (c->req.host) c->req.host += d2;
    for (size_t i = 0; i < c->req.num_headers; i++) {
      c->headers[i].name += d2;
      c->headers[i].value += d2;
    }
  }
  tusk_buf_consume(&c->in, c->head_len);
  return 0;
}


/* ---- static files ------------------------------------------------------------ */

/* Sends the rest of a static file. With nothing queued, sendfile(2) hands
 * the file to the kernel; when the socket is full, one chunk is queued
 * through libuv, whose write callback brings us back here. */
static void static_pump(tusk_h1_conn_t *c) {
  while (c->file_left > 0 && !c->closing) {
    if (c->writes_pending > 0) return; /* on_write -> after_writes -> here */
    int sock;
    if (!c->tls && uv_fileno((uv_handle_t *)&c->tcp, &sock) == 0) {
      ssize_t n = sendfile(sock, c->file_fd, &c->file_off, c->file_left);
      if (n > 0) {
        c->file_left -= (size_t)n;
        c->sent += (uint64_t)n;
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        conn_close(c);
        return;
      }
      if (n == 0) { /* the file shrank under us */
        conn_close(c);
        return;
      }
    }
    tusk_buf_t b;
    tusk_buf_init(&b);
    size_t want = TUSK_MIN(c->file_left, (size_t)FILE_CHUNK);
    if (tusk_buf_reserve(&b, want) != 0) {
      conn_close(c);
      return;
    }
    ssize_t n = pread(c->file_fd, b.data, want, c->file_off);
    if (n <= 0) {
      tusk_buf_dispose(&b);
      conn_close(c);
      return;
    }
    b.len = (size_t)n;
    c->file_off += n;
    c->file_left -= (size_t)n;
    c->sent += (uint64_t)n;
    conn_write(c, &b); /* written at once, or queued (writes_pending) */
  }
  if (!c->closing && c->file_fd >= 0 && c->file_left == 0) {
    close(c->file_fd);
    c->file_fd = -1;
    finish_request(c);
  }
}

static void serve_static(tusk_h1_conn_t *c, const tusk_http_req_t *rq, tusk_route_t *r) {
  tusk_static_plan_t p;
  tusk_http_static_plan(c->ctx, rq, r, c->is_head, &p);
  if (p.status == 405 || p.status == 204) {
    respond_simple(c, p.status, p.head.data, 0);
    tusk_buf_dispose(&p.head);
    return;
  }
  tusk_buf_t b;
  tusk_buf_init(&b);
  tusk_buf_printf(&b, "HTTP/1.1 %d %s\r\nServer: tusk\r\nDate: %s\r\n", p.status, tusk_http_reason(p.status),
                  tusk_http_date_now());
  tusk_buf_append(&b, p.head.data, p.head.len);
  tusk_buf_dispose(&p.head);
  if (p.status != 304) tusk_buf_printf(&b, "Content-Length: %zu\r\n", p.len);
  if (!c->keep_alive) tusk_buf_append_str(&b, "Connection: close\r\n");
  else if (c->req.version_minor == 0) tusk_buf_append_str(&b, "Connection: keep-alive\r\n");
  tusk_buf_append(&b, "\r\n", 2);
  c->status = p.status;
  c->state = ST_WRITE;
  if (p.mem) {
    tusk_buf_append(&b, p.mem, p.len);
    c->sent = p.len;
  }
  if (p.fd < 0) {
    conn_write(c, &b);
    if (!c->closing) finish_request(c);
    return;
  }
  if (p.len <= SMALL_FILE || c->tls) {
    if (p.len <= SMALL_FILE && tusk_buf_reserve(&b, p.len) == 0) {
      ssize_t n = pread(p.fd, b.data + b.len, p.len, p.off);
      close(p.fd);
      if (n != (ssize_t)p.len) {
        tusk_buf_dispose(&b);
        conn_close(c);
        return;
      }
      b.len += p.len;
      c->sent = p.len;
      conn_write(c, &b);
      if (!c->closing) finish_request(c);
      return;
    }
  }
  conn_write(c, &b);
  c->file_fd = p.fd;
  c->file_off = p.off;
  c->file_left = p.len;
  if (!c->closing) static_pump(c);
}

/* ---- routing ------------------------------------------------------------------ */

static void h1_view(tusk_h1_conn_t *c, tusk_http_req_t *rq) {
  memset(rq, 0, sizeof *rq);
  rq->method = c->req.method;
  rq->method_len = c->req.method_len;
  rq->target = c->req.target;
  rq->target_len = c->req.target_len;
  rq->host = c->req.host;
  rq->host_len = c->req.host_len;
  rq->headers = c->headers;
  rq->num_headers = c->req.num_headers;
  rq->protocol = c->req.version_minor ? "HTTP/1.1" : "HTTP/1.0";
  rq->body = c->body.data;
  rq->body_len = c->body.len;
  rq->has_body = c->req.content_length >= 0 || c->req.chunked;
  rq->remote_addr = c->remote_addr;
  rq->remote_port = c->remote_port;
  rq->local_addr = c->local_addr;
  rq->local_port = c->local_port;
  tusk__conn_tls_info(c, &rq->tls_version, &rq->tls_cipher, &rq->tls_sni);
}

/* ---- HTTP/2 ------------------------------------------------------------------ */

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* Everything read goes to the HTTP/2 session. */
static void h2_input(tusk_h1_conn_t *c) {
  if (c->in.len == 0 || c->closing) return;
  int rc = tusk_h2_feed(c->h2, c->in.data, c->in.len);
  tusk_buf_reset(&c->in);
  if (c->in.cap > 64 * 1024) tusk_buf_dispose(&c->in);
  if (rc != 0 && !c->closing) tusk__conn_close_after_writes(c);
  else if (!c->closing) arm(c, c->ctx->conf->idle_timeout);
}

/* Forgets the HTTP/1.1 request state once HTTP/2 has taken over. */
static void h1_forget(tusk_h1_conn_t *c) {
  free((void *)c->req.method);
  memset(&c->req, 0, sizeof c->req);
  c->req.headers = c->headers;
  tusk_buf_dispose(&c->body);
  c->state = ST_PHP; /* no HTTP/1.1 processing any more */
}

/* base64url without padding (RFC 7540 3.2.1) into out, with OpenSSL's
 * decoder; returns the length or -1. */
static int b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap) {
  char std[1400];
  if (len == 0 || len % 4 == 1 || len + 3 > sizeof std || (len + 3) / 4 * 3 > cap) return -1;
  size_t n = 0;
  for (; n < len; n++) {
    char ch = in[n];
    if (ch == '=' || ch == '+' || ch == '/') return -1; /* not the URL alphabet */
    std[n] = ch == '-' ? '+' : ch == '_' ? '/' : ch;
  }
  size_t pad = (4 - len % 4) % 4;
  for (size_t i = 0; i < pad; i++) std[n++] = '=';
  int got = EVP_DecodeBlock(out, (const unsigned char *)std, (int)n);
  return got < 0 ? -1 : got - (int)pad;
}

/* An HTTP/1.1 request with "Upgrade: h2c" and HTTP2-Settings: answer 101
 * and continue in HTTP/2, the request becoming stream 1. Returns 1 when
 * the connection switched. */
static int try_h2c_upgrade(tusk_h1_conn_t *c, const tusk_http_req_t *rq) {
  if (!c->ctx->conf->h2c || c->tls || c->req.version_minor != 1) return 0;
  size_t ul, sl;
  const char *up = tusk_http_req_header(rq, "Upgrade", &ul);
  if (!up) return 0; /* the usual case: one scan of the headers */
  const char *settings = tusk_http_req_header(rq, "HTTP2-Settings", &sl);
  if (!settings) return 0;
  int want = 0;
  for (size_t i = 0; i + 3 <= ul; i++) {
    if (!strncasecmp(up + i, "h2c", 3) && (i == 0 || up[i - 1] == ' ' || up[i - 1] == ',') &&
        (i + 3 == ul || up[i + 3] == ' ' || up[i + 3] == ',')) {
      want = 1;
    }
  }
  if (!want) return 0;
  unsigned char payload[1024];
  int pl = b64url_decode(settings, sl, payload, sizeof payload);
  if (pl < 0 || pl % 6 != 0) return 0; /* a bad HTTP2-Settings: stay on HTTP/1.1 */
  tusk_buf_t b;
  tusk_buf_init(&b);
  tusk_buf_append_str(&b, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
  conn_write(c, &b);
  if (c->closing) return 1;
  c->h2 = tusk_h2_create(c, rq, (const char *)payload, (size_t)pl);
  h1_forget(c);
  if (!c->h2) {
    conn_close(c);
    return 1;
  }
  tusk_h2_flush(c->h2);
  return 1;
}

/* --websocket-app: a WebSocket upgrade goes to a `tusk run` app, socket and
 * all (its master answers the handshake). Returns 1 when handed over (or
 * refused with an answer), 0 for a request that is not one. */
static int try_websocket_handoff(tusk_h1_conn_t *c) {
  const char *app = c->ctx->conf->websocket_app;
  if (!app || !c->req.upgrade) return 0;
  const tusk_h1_header_t *up = tusk_h1_find_header(&c->req, "upgrade");
  if (!up || up->value_len != 9 || strncasecmp(up->value, "websocket", 9) != 0) return 0;
  if (c->tls) {
    /* The TLS session lives in this process: it cannot be handed over. */
    respond_simple(c, 501, NULL, 1);
    TUSK_INFO("%s:%d: 501 WebSocket over TLS on the HTTPS port is not handed to --websocket-app (use the app's own "
              "port)", c->remote_addr, c->remote_port);
    return 1;
  }
  int fd = -1;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) return 0;
  /* The frame: ADOPT, id 0, the head and what followed it. */
  size_t hl = strlen(c->req.method); /* the head copy is one NUL-terminated string */
  tusk_buf_t b;
  tusk_buf_init(&b);
  tusk_chan_frame_t f = {(uint32_t)(8 + hl + c->in.len), 54 /* TUSK_APP_CMD_ADOPT */, 0, 0};
  uint64_t id = 0;
  tusk_buf_append(&b, &f, sizeof f);
  tusk_buf_append(&b, &id, 8);
  tusk_buf_append(&b, c->req.method, hl);
  tusk_buf_append(&b, c->in.data, c->in.len);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un un;
  memset(&un, 0, sizeof un);
  un.sun_family = AF_UNIX;
  snprintf(un.sun_path, sizeof un.sun_path, "%s", app);
  int ok = s >= 0 && connect(s, (struct sockaddr *)&un, sizeof un) == 0;
  if (ok) {
    char cm[CMSG_SPACE(sizeof(int))];
    memset(cm, 0, sizeof cm);
    struct iovec iov = {b.data, b.len};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cm;
    mh.msg_controllen = sizeof cm;
    struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
    ch->cmsg_level = SOL_SOCKET;
    ch->cmsg_type = SCM_RIGHTS;
    ch->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(ch), &fd, sizeof(int));
    ok = sendmsg(s, &mh, MSG_NOSIGNAL) == (ssize_t)b.len;
  }
  if (s >= 0) close(s);
  tusk_buf_dispose(&b);
  if (!ok) {
    TUSK_WARN("%s:%d: cannot hand a WebSocket client to --websocket-app %s: %s: 503", c->remote_addr, c->remote_port,
              app, strerror(errno));
    respond_simple(c, 503, NULL, 1);
    return 1;
  }
  /* The app owns the socket now: close our descriptor, send nothing. */
  tusk_buf_reset(&c->in);
  conn_close(c);
  return 1;
}

static void dispatch(tusk_h1_conn_t *c) {
  uv_timer_stop(&c->timer);
  if (try_websocket_handoff(c)) return;
  tusk_http_req_t rq;
  h1_view(c, &rq);
  if (try_h2c_upgrade(c, &rq)) {
    if (c->h2 && !c->closing) h2_input(c);
    return;
  }
  const tusk_conf_t *conf = c->ctx->conf;
  if (conf->tls_redirect && conf->tls_cert && !c->tls) {
    /* --tls-redirect: the same URL on the HTTPS port (308 keeps the method). */
    int port = conf->tls_listen_port ? conf->tls_listen_port : c->ctx->tls_port;
    size_t hl = c->req.host_len;
    const char *h = c->req.host ? c->req.host : c->local_addr;
    if (!c->req.host) hl = strlen(h);
    const char *colon = h[0] == '[' ? memchr(h, ']', hl) : memchr(h, ':', hl);
    if (colon) hl = (size_t)(colon - h) + (h[0] == '[');
    tusk_buf_t loc;
    tusk_buf_init(&loc);
    const char *t = c->req.target[0] == '/' ? c->req.target : "/";
    size_t tl = c->req.target[0] == '/' ? c->req.target_len : 1;
    if (port == 443) tusk_buf_printf(&loc, "Location: https://%.*s%.*s\r\n", (int)hl, h, (int)tl, t);
    else tusk_buf_printf(&loc, "Location: https://%.*s:%d%.*s\r\n", (int)hl, h, port, (int)tl, t);
    respond_simple(c, 308, loc.data, 0);
    tusk_buf_dispose(&loc);
    return;
  }
  tusk_http_decision_t d;
  tusk_http_decide(c->ctx, &rq, &d, &c->job);
  switch (d.act) {
    case TUSK_ACT_STATIC:
      serve_static(c, &rq, &d.route);
      break;
    case TUSK_ACT_PHP:
      c->state = ST_PHP;
      if (c->ctx->php_submit(&c->job) != 0) {
        tusk__http_warn_queue_full(c->ctx, c->job.what);
        c->state = ST_WRITE;
        respond_simple(c, 503, "Retry-After: 1\r\n", 0);
      }
      break;
    default:
      if (d.close) reject(c, d.status, d.why ? d.why : "bad request");
      else respond_simple(c, d.status, d.headers.len ? d.headers.data : NULL, 0);
      break;
  }
  tusk_buf_dispose(&d.headers);
}

static void process(tusk_h1_conn_t *c) {
  const tusk_conf_t *conf = c->ctx->conf;
  while (!c->closing) {
    if (c->h2) return;
    if (c->state == ST_HEAD && c->served == 0 && c->in.len > 0 && c->ctx->conf->h2c && !c->tls &&
        c->in.data[0] == 'P') {
      /* HTTP/2 with prior knowledge: the client preface. */
      size_t n = TUSK_MIN(c->in.len, sizeof h2_preface - 1);
      if (!memcmp(c->in.data, h2_preface, n)) {
        if (n < sizeof h2_preface - 1) return; /* wait for the rest */
        c->h2 = tusk_h2_create(c, NULL, NULL, 0);
        if (!c->h2) {
          conn_close(c);
          return;
        }
        h1_forget(c);
        h2_input(c);
        return;
      }
    }
    if (c->state == ST_HEAD) {
      if (c->in.len == 0) {
        /* While draining, a connection that has not sent its first request
         * yet gets a moment to do so (it was accepted before we stopped). */
        arm(c, c->ctx->draining ? TUSK_MIN(conf->idle_timeout, 1.0) : conf->idle_timeout);
        return;
      }
      c->req.headers = c->headers;
      int rc = tusk_h1_parse_request(c->in.data, c->in.len, &c->req, &c->ctx->limits);
      if (rc <= 0) {
        /* A partial or failed parse leaves pointers into c->in: forget
         * them, c->req.method must only ever be the copied head. */
        memset(&c->req, 0, sizeof c->req);
        c->req.headers = c->headers;
      }
      if (rc == TUSK_AGAIN) {
        if (!uv_is_active((uv_handle_t *)&c->timer) || c->started_ms == 0) {
          c->started_ms = now_ms(c);
          arm(c, conf->header_timeout);
        }
        return;
      }
      if (rc < 0) {
        reject(c, tusk_h1_error_status(rc), tusk_h1_error_str(rc));
        return;
      }
      c->head_len = (size_t)rc;
      if (copy_head(c) != 0) {
        conn_close(c);
        return;
      }
      if (c->started_ms == 0) c->started_ms = now_ms(c);
      c->keep_alive = c->req.keep_alive;
      c->is_head = c->req.method_len == 4 && !memcmp(c->req.method, "HEAD", 4);
      tusk_buf_reset(&c->body);
      if (c->req.chunked) {
        tusk_h1_chunked_init(&c->chunked, conf->max_head);
        c->state = ST_BODY;
      } else if (c->req.content_length > 0) {
        if ((uint64_t)c->req.content_length > conf->max_body) {
          TUSK_INFO("%s:%d: 413 body of %lld bytes is over --max-body-size %zu", c->remote_addr, c->remote_port,
                    (long long)c->req.content_length, conf->max_body);
          respond_simple(c, 413, NULL, 1);
          return;
        }
        c->body_need = (uint64_t)c->req.content_length;
        c->state = ST_BODY;
      } else {
        dispatch(c);
        continue;
      }
      if (c->req.expect_continue && c->req.version_minor == 1) {
        int have_all = !c->req.chunked && c->in.len >= c->body_need;
        if (!have_all) {
          tusk_buf_t b;
          tusk_buf_init(&b);
          tusk_buf_append_str(&b, "HTTP/1.1 100 Continue\r\n\r\n");
          conn_write(c, &b);
        }
      }
      arm(c, conf->body_timeout);
    }
    if (c->state == ST_BODY) {
      if (c->req.chunked) {
        size_t used = 0;
        int rc = tusk_h1_chunked_feed(&c->chunked, c->in.data, c->in.len, &used, &c->body);
        tusk_buf_consume(&c->in, used);
        if (c->body.len > conf->max_body) {
          TUSK_INFO("%s:%d: 413 chunked body is over --max-body-size %zu", c->remote_addr, c->remote_port,
                    conf->max_body);
          respond_simple(c, 413, NULL, 1);
          return;
        }
        if (rc == TUSK_AGAIN) {
          arm(c, conf->body_timeout);
          return;
        }
        if (rc < 0) {
          reject(c, rc == TUSK_ENOMEM ? 500 : tusk_h1_error_status(rc), "bad chunked body");
          return;
        }
        dispatch(c);
        continue;
      }
      size_t take = (size_t)TUSK_MIN((uint64_t)c->in.len, c->body_need);
      if (tusk_buf_append(&c->body, c->in.data, take) != 0) {
        conn_close(c);
        return;
      }
      tusk_buf_consume(&c->in, take);
      c->body_need -= take;
      if (c->body_need > 0) {
        arm(c, conf->body_timeout);
        return;
      }
      dispatch(c);
      continue;
    }
    /* Waiting for PHP or a write: pipelined bytes stay buffered, but not
     * without bound. */
    if (c->in.len > MAX_PIPELINE_BUFFER && !c->read_stopped) {
      c->read_stopped = 1;
      uv_read_stop((uv_stream_t *)&c->tcp);
    }
    return;
  }
}

/* ---- PHP response ------------------------------------------------------------- */

static int php_status(tusk_h1_conn_t *c) {
  tusk_chan_head_t h;
  tusk_chan_head_parse(c->php_head.data, c->php_head.len, &h);
  return h.status;
}

static int bodyless(int status) { return status < 200 || status == 204 || status == 304; }

/* The encoding for this PHP response (known_len -1: streamed). */
static int pick_encoding(tusk_h1_conn_t *c, long long known_len) {
  if (c->is_head || !c->ctx->conf->compress_mask) return TUSK_ENC_NONE;
  const tusk_h1_header_t *ae = tusk_h1_find_header(&c->req, "Accept-Encoding");
  if (!ae) return TUSK_ENC_NONE;
  tusk_chan_head_t h;
  tusk_chan_head_parse(c->php_head.data, c->php_head.len, &h);
  return tusk_http_pick_encoding(c->ctx, ae->value, ae->value_len, h.status, h.lines, h.lines_len, known_len);
}

static void append_content_length(tusk_buf_t *b, long long n) {
  tusk_buf_append(b, "Content-Length: ", 16);
  tusk_buf_append_u64(b, (unsigned long long)n);
  tusk_buf_append(b, "\r\n", 2);
}

/* Builds the response head from PHP's HEAD frame. content_length < 0 means
 * the body is streamed (chunked on HTTP/1.1, close-delimited on 1.0). */
static void build_head(tusk_h1_conn_t *c, tusk_buf_t *b, long long content_length) {
  tusk_chan_head_t h;
  tusk_chan_head_parse(c->php_head.data, c->php_head.len, &h);
  int status = h.status;
  const char *reason = h.reason, *lines = h.lines;
  size_t rl = h.reason_len, ll = h.lines_len;
  if (rl == 0) {
    reason = tusk_http_reason(status);
    rl = strlen(reason);
  }
  /* No printf on this path: it is every PHP response's. */
  tusk_buf_reserve(b, 256 + rl + ll);
  tusk_buf_append(b, "HTTP/1.1 ", 9);
  tusk_buf_append_u64(b, (unsigned)status);
  tusk_buf_append(b, " ", 1);
  tusk_buf_append(b, reason, rl);
  tusk_buf_append(b, "\r\n", 2);
  long long php_cl = -1;
  int php_date = 0, php_server = 0;
  /* Copy PHP's headers, except the framing ones we decide. */
  const char *p = lines, *end = lines + ll;
  while (p < end) {
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    if (!eol) eol = end;
    size_t n = (size_t)(eol - p);
    if (n >= 15 && !strncasecmp(p, "Content-Length:", 15)) {
      php_cl = atoll(p + 15);
    } else if ((n >= 18 && !strncasecmp(p, "Transfer-Encoding:", 18)) ||
               (n >= 11 && !strncasecmp(p, "Connection:", 11))) {
      if (n >= 11 && !strncasecmp(p, "Connection:", 11) && strcasestr(p, "close") && strcasestr(p, "close") < eol)
        c->keep_alive = 0;
    } else if (n > 0) {
      if (n >= 5 && !strncasecmp(p, "Date:", 5)) php_date = 1;
      if (n >= 7 && !strncasecmp(p, "Server:", 7)) php_server = 1;
      tusk_buf_append(b, p, n);
      tusk_buf_append(b, "\r\n", 2);
    }
    p = eol + 2;
  }
  if (c->enc_kind) {
    tusk_buf_printf(b, "Content-Encoding: %s\r\nVary: Accept-Encoding\r\n", tusk_compress_name(c->enc_kind));
    php_cl = -1; /* PHP's length was of the unencoded body */
  }
  /* The app's own Date or Server header wins (Symfony sets Date). */
  if (!php_server) tusk_buf_append_str(b, "Server: tusk\r\n");
  if (!php_date) {
    tusk_buf_append(b, "Date: ", 6);
    tusk_buf_append_str(b, tusk_http_date_now());
    tusk_buf_append(b, "\r\n", 2);
  }
  if (!bodyless(status)) {
    if (c->is_head) {
      /* PHP discards a HEAD response's body: only a length PHP set itself is
       * known (php-fpm behind nginx sends none otherwise). */
      if (php_cl >= 0) append_content_length(b, php_cl);
    } else if (content_length >= 0) {
      append_content_length(b, content_length);
    } else if (php_cl >= 0) {
      /* Streaming, but PHP declared the length (e.g. a tracking pixel sent
       * before the script goes on working): keep it, like nginx, so the
       * client is done as soon as those bytes arrive. */
      append_content_length(b, php_cl);
      c->stream_left = php_cl;
    } else if (c->req.version_minor == 1) {
      tusk_buf_append_str(b, "Transfer-Encoding: chunked\r\n");
    } else {
      c->keep_alive = 0;
    }
  }
  if (!c->keep_alive || c->ctx->draining) tusk_buf_append_str(b, "Connection: close\r\n");
  else if (c->req.version_minor == 0) tusk_buf_append_str(b, "Connection: keep-alive\r\n");
  tusk_buf_append(b, "\r\n", 2);
  c->status = status;
}

static void php_info(tusk_http_job_t *j, const char *payload, size_t len) {
  tusk_h1_conn_t *c = CONN_OF(j);
  if (c->closing || c->streaming || c->req.version_minor == 0) return;
  tusk_chan_head_t h;
  tusk_chan_head_parse(payload, len, &h);
  int st = h.status;
  if (st < 100 || st > 199 || st == 101) return;
  const char *reason = h.reason_len ? h.reason : tusk_http_reason(st);
  int reason_len = h.reason_len ? (int)h.reason_len : (int)strlen(reason);
  tusk_buf_t b;
  tusk_buf_init(&b);
  tusk_buf_printf(&b, "HTTP/1.1 %d %.*s\r\n", st, reason_len, reason);
  /* Only hints belong in an informational head: the Link headers. */
  const char *p = h.lines, *end = h.lines + h.lines_len;
  while (p < end) {
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    if (!eol) eol = end;
    size_t n = (size_t)(eol - p);
    if (n > 5 && !strncasecmp(p, "Link:", 5)) {
      tusk_buf_append(&b, p, n);
      tusk_buf_append(&b, "\r\n", 2);
    }
    p = eol + 2;
  }
  tusk_buf_append(&b, "\r\n", 2);
  conn_write(c, &b);
}

int tusk__head_is_event_stream(const char *payload, size_t len) {
  tusk_chan_head_t h;
  tusk_chan_head_parse(payload, len, &h);
  for (const char *l = h.lines, *end = h.lines + h.lines_len; l < end;) {
    const char *eol = memchr(l, '\n', (size_t)(end - l));
    size_t ll = eol ? (size_t)(eol - l) : (size_t)(end - l);
    if (ll >= 30 && !strncasecmp(l, "content-type:", 13)) {
      const char *v = l + 13;
      while (*v == ' ') v++;
      if (!strncasecmp(v, "text/event-stream", 17)) return 1;
    }
    l += ll + 1;
  }
  return 0;
}

static void php_head(tusk_http_job_t *j, const char *payload, size_t len) {
  tusk_h1_conn_t *c = CONN_OF(j);
  tusk_buf_reset(&c->php_head);
  tusk_buf_append(&c->php_head, payload, len);
  c->sse = tusk__head_is_event_stream(payload, len);
  c->sse_tail[0] = c->sse_tail[1] = '\n';
}

static void stream_piece(tusk_h1_conn_t *c, tusk_buf_t *b, const char *data, size_t len, int mode);

/* --sse-keepalive: a quiet text/event-stream response gets a comment line,
 * so that proxies and browsers keep it open; only between events. */
static void on_sse_keepalive(uv_timer_t *t) {
  tusk_h1_conn_t *c = t->data;
  if (c->closing || !c->streaming || !c->sse || !c->job.worker) {
    uv_timer_stop(t);
    return;
  }
  if (c->sse_tail[0] != '\n' || c->sse_tail[1] != '\n') return;
  tusk_buf_t b;
  tusk_buf_init(&b);
  static const char ka[] = ": keep-alive\n\n";
  stream_piece(c, &b, ka, sizeof ka - 1, 1);
  conn_write(c, &b);
}

/* Appends one piece of a streamed body, chunk-framed on HTTP/1.1. */
static void stream_piece(tusk_h1_conn_t *c, tusk_buf_t *b, const char *data, size_t len, int mode) {
  if (c->is_head || bodyless(php_status(c))) return;
  tusk_buf_t z;
  tusk_buf_init(&z);
  if (c->enc) {
    /* mode: 0 more follows, 1 flush, 2 the end */
    if (tusk_encoder_write(c->enc, data, len, mode, &z) == 0) {
      data = z.data;
      len = z.len;
    }
  }
  if (len == 0) {
    tusk_buf_dispose(&z);
    return;
  }
  if (c->stream_left >= 0) {
    /* Declared length: raw bytes, and nothing beyond what was declared. */
    size_t n = (size_t)TUSK_MIN((long long)len, c->stream_left);
    tusk_buf_append(b, data, n);
    c->stream_left -= (long long)n;
    c->sent += n;
    return;
  }
  if (c->req.version_minor == 1) tusk_buf_printf(b, "%zx\r\n", len);
  tusk_buf_append(b, data, len);
  if (c->req.version_minor == 1) tusk_buf_append(b, "\r\n", 2);
  c->sent += len;
  tusk_buf_dispose(&z);
}

static void php_body(tusk_http_job_t *j, const char *data, size_t len, int flush) {
  tusk_h1_conn_t *c = CONN_OF(j);
  if (c->closing) return;
  if (!c->streaming && !flush) {
    tusk_buf_append(&c->php_body, data, len);
    /* Bounded: past --output-buffer-size the response is streamed (chunked),
     * and the pool makes PHP wait while the client is slow. */
    if (c->php_body.len < c->ctx->conf->output_buffer) return;
    data = "";
    len = 0;
  }
  tusk_buf_t b;
  tusk_buf_init(&b);
  if (!c->streaming) {
    /* First flush: the head goes out with chunked framing (or PHP's own
     * Content-Length). */
    c->streaming = 1;
    c->stream_left = -1;
    c->enc_kind = pick_encoding(c, -1);
    if (c->enc_kind && !(c->enc = tusk_encoder_create(c->enc_kind, -1))) c->enc_kind = 0;
    build_head(c, &b, -1);
    stream_piece(c, &b, c->php_body.data, c->php_body.len, 0);
    tusk_buf_reset(&c->php_body);
  }
  stream_piece(c, &b, data, len, 1);
  conn_write(c, &b);
  if (c->sse && !c->closing) {
    if (len >= 2) memcpy(c->sse_tail, data + len - 2, 2);
    else if (len == 1) c->sse_tail[0] = c->sse_tail[1], c->sse_tail[1] = data[0];
    double ka = c->ctx->conf->sse_keepalive;
    if (ka > 0) uv_timer_start(&c->timer, on_sse_keepalive, (uint64_t)(ka * 1000), (uint64_t)(ka * 1000));
  }
}

static void php_end(tusk_http_job_t *j) {
  tusk_h1_conn_t *c = CONN_OF(j);
  if (c->closing) return;
  tusk_buf_t b;
  tusk_buf_init(&b);
  int status = php_status(c);
  if (c->streaming) {
    stream_piece(c, &b, c->php_body.data, c->php_body.len, 2);
    tusk_buf_reset(&c->php_body);
    if (c->stream_left > 0) {
      c->keep_alive = 0; /* PHP sent less than it declared: the client must see the cut */
    } else if (c->stream_left < 0 && !c->is_head && !bodyless(status) && c->req.version_minor == 1) {
      tusk_buf_append_str(&b, "0\r\n\r\n");
    }
  } else {
    c->enc_kind = pick_encoding(c, (long long)c->php_body.len);
    if (c->enc_kind) {
      tusk_buf_t z;
      tusk_buf_init(&z);
      if (tusk_compress_buffer(c->enc_kind, -1, c->php_body.data, c->php_body.len, &z) == 0) {
        tusk_buf_dispose(&c->php_body);
        c->php_body = z;
      } else {
        tusk_buf_dispose(&z);
        c->enc_kind = 0;
      }
    }
    build_head(c, &b, (long long)c->php_body.len);
    if (!c->is_head && !bodyless(status)) {
      tusk_buf_append(&b, c->php_body.data, c->php_body.len);
      c->sent = c->php_body.len;
    }
  }
  c->job.worker = NULL;
  c->state = ST_WRITE;
  conn_write(c, &b);
  if (c->closing) return;
  finish_request(c);
  process(c);
}

static void php_fail(tusk_http_job_t *j, int status) {
  tusk_h1_conn_t *c = CONN_OF(j);
  c->job.worker = NULL;
  if (c->closing) return;
  if (c->streaming) {
    conn_close(c); /* the client sees a truncated chunked body */
    return;
  }
  c->state = ST_WRITE;
  respond_simple(c, status, NULL, status != 503);
  if (!c->closing && c->state == ST_HEAD) process(c);
}

/* 1 when the client has closed its side (for connection_aborted()). */
static int php_aborted(tusk_http_job_t *j) {
  tusk_h1_conn_t *c = CONN_OF(j);
  if (c->closing) return 1;
  int fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) return 1;
  char b;
  return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static size_t php_pending(tusk_http_job_t *j) {
  tusk_h1_conn_t *c = CONN_OF(j);
  if (c->closing) return 0;
  return (c->streaming ? c->php_body.len : 0) + uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
}

static const tusk_http_job_ops_t h1_job_ops = {php_head,  php_info,    php_body,
                                               php_end,   php_fail,    php_aborted,
                                               php_pending};

/* ---- libuv plumbing ---------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  tusk_h1_conn_t *c = h->data;
  if (c->tls) {
    if (tusk_buf_reserve(&c->raw, 16 * 1024) != 0) {
      *buf = uv_buf_init(NULL, 0);
      return;
    }
    *buf = uv_buf_init(c->raw.data, (unsigned)(c->raw.cap - 1));
    return;
  }
  if (tusk_buf_reserve(&c->in, 16 * 1024) != 0) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

/* Decrypts n bytes read into c->raw, appending the plaintext to c->in.
 * Returns 0 when there is plaintext to process, else 1 (handshake still
 * going, or the connection is closing). */
static int tls_input(tusk_h1_conn_t *c, size_t n) {
  tusk_buf_t out;
  tusk_buf_init(&out);
  size_t before = c->in.len;
  int rc = tusk_tls_conn_feed(c->tls, c->raw.data, n, &c->in, &out);
  if (out.len) raw_write(c, &out);
  else tusk_buf_dispose(&out);
  if (c->closing) return 1;
  if (rc != 0) {
    TUSK_DEBUG("%s:%d: TLS: %s", c->remote_addr, c->remote_port, tusk_tls_conn_error(c->tls));
    tusk__conn_close_after_writes(c);
    return 1;
  }
  if (!c->tls_ready && tusk_tls_conn_ready(c->tls)) {
    c->tls_ready = 1;
    const char *alpn = tusk_tls_conn_alpn(c->tls);
    if (alpn && !strcmp(alpn, "h2")) {
      c->h2 = tusk_h2_create(c, NULL, NULL, 0);
      if (!c->h2) {
        conn_close(c);
        return 1;
      }
      tusk_h2_flush(c->h2);
    }
  }
  if (tusk_tls_conn_peer_closed(c->tls) && c->in.len == before) {
    conn_close(c);
    return 1;
  }
  if (c->in.len == before) return 1;
  c->in.data[c->in.len] = '\0';
  return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tusk_h1_conn_t *c = s->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread > 0) c->active_ms = now_ms(c);
  if (nread == 0) return;
  if (c->state == ST_LINGER) return; /* drop */
  if (c->tls) {
    if (tls_input(c, (size_t)nread) != 0) return;
  } else {
    c->in.len += (size_t)nread;
    c->in.data[c->in.len] = '\0';
  }
  if (c->h2) {
    h2_input(c);
    return;
  }
  /* While the head is incomplete, its limit bounds the buffer. */
  if (c->state == ST_HEAD || c->state == ST_BODY || c->state == ST_PHP || c->state == ST_WRITE) process(c);
  if (!c->closing && c->in.cap > 256 * 1024 && c->in.len < 16 * 1024 && c->state == ST_HEAD) {
    tusk_buf_t copy;
    tusk_buf_init(&copy);
    tusk_buf_append(&copy, c->in.data, c->in.len);
    tusk_buf_dispose(&c->in);
    c->in = copy;
  }
}

static void on_close(uv_handle_t *h) {
  tusk_h1_conn_t *c = h->data;
  if (--c->handles_open > 0) return;
  tusk_http_ctx_t *ctx = c->ctx;
  /* Here, not in conn_close(): HTTP/2 code may be on the stack there. */
  tusk_h2_destroy(c->h2);
  if (c->prev) c->prev->next = c->next;
  else ctx->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  ctx->nconns--;
  if (ctx->own_conns) __atomic_sub_fetch(ctx->own_conns, 1, __ATOMIC_RELAXED);
  free((void *)c->req.method);
  tusk_buf_dispose(&c->in);
  tusk_buf_dispose(&c->body);
  tusk_buf_dispose(&c->job.frame);
  tusk_buf_dispose(&c->php_head);
  tusk_buf_dispose(&c->php_body);
  tusk_encoder_destroy(c->enc);
  tusk_tls_conn_destroy(c->tls);
  tusk_buf_dispose(&c->raw);
  free(c->headers);
  free(c);
  if (ctx->draining && ctx->nconns == 0 && ctx->on_drained) ctx->on_drained(ctx);
}

static void conn_close(tusk_h1_conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  if (c->job.worker || c->job.queued) c->ctx->php_cancel(&c->job);
  if (c->file_fd >= 0) {
    close(c->file_fd);
    c->file_fd = -1;
  }
  uv_close((uv_handle_t *)&c->timer, on_close);
  uv_close((uv_handle_t *)&c->tcp, on_close);
}

tusk_h1_conn_t *tusk_h1_conn_alloc(tusk_http_ctx_t *ctx) {
  tusk_h1_conn_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->headers = calloc(ctx->limits.max_headers, sizeof *c->headers);
  if (!c->headers) {
    free(c);
    return NULL;
  }
  c->ctx = ctx;
  c->job.ops = &h1_job_ops;
  c->file_fd = -1;
  uv_tcp_init(ctx->loop, &c->tcp);
  c->tcp.data = c;
  return c;
}

static void on_close_unstarted(uv_handle_t *h) {
  tusk_h1_conn_t *c = h->data;
  free(c->headers);
  free(c);
}

void tusk_h1_conn_free_unstarted(tusk_h1_conn_t *c) { uv_close((uv_handle_t *)&c->tcp, on_close_unstarted); }

static void addr_str(const struct sockaddr_storage *ss, char *out, size_t outlen, int *port) {
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, out, outlen);
    *port = ntohs(a->sin6_port);
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, out, outlen);
    *port = ntohs(a->sin_port);
  }
}

void tusk_h1_conn_start(tusk_http_ctx_t *ctx, tusk_h1_conn_t *c, int tls) {
  if (tls && ctx->tls && !(c->tls = tusk_tls_conn_create(ctx->tls))) {
    tusk_h1_conn_free_unstarted(c);
    return;
  }
  uv_timer_init(ctx->loop, &c->timer);
  c->timer.data = c;
  c->active_ms = uv_now(ctx->loop);
  c->handles_open = 2;
  c->next = ctx->conns;
  if (ctx->conns) ctx->conns->prev = c;
  ctx->conns = c;
  ctx->nconns++;
  if (ctx->own_conns) __atomic_add_fetch(ctx->own_conns, 1, __ATOMIC_RELAXED);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    addr_str(&ss, c->remote_addr, sizeof c->remote_addr, &c->remote_port);
  }
  len = sizeof ss;
  if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    addr_str(&ss, c->local_addr, sizeof c->local_addr, &c->local_port);
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->req.headers = c->headers;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  arm(c, ctx->conf->idle_timeout);
}

void tusk_http_drain(tusk_http_ctx_t *ctx) {
  ctx->draining = 1;
  tusk_h1_conn_t *c = ctx->conns, *next;
  for (; c; c = next) {
    next = c->next;
    if (c->h2) {
      tusk_h2_drain(c->h2);
      continue;
    }
    if (c->state == ST_HEAD && c->in.len == 0 && c->writes_pending == 0) {
      if (c->served > 0) conn_close(c);
      else arm(c, TUSK_MIN(ctx->conf->idle_timeout, 1.0)); /* its request may be on the way */
    }
  }
  if (ctx->nconns == 0 && ctx->on_drained) ctx->on_drained(ctx);
}

int tusk_http_ctx_init(tusk_http_ctx_t *ctx, uv_loop_t *loop, const tusk_conf_t *conf, char *err, size_t errlen) {
  memset(ctx, 0, sizeof *ctx);
  ctx->loop = loop;
  ctx->conf = conf;
  ctx->limits.max_head = conf->max_head;
  ctx->limits.max_uri = conf->max_uri;
  ctx->limits.max_headers = conf->max_headers;
  ctx->docroot.fd = open(conf->docroot, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (ctx->docroot.fd < 0) {
    snprintf(err, errlen, "cannot open document root %s: %s", conf->docroot, strerror(errno));
    return -1;
  }
  ctx->docroot.path = conf->docroot;
  ctx->docroot.path_len = strlen(conf->docroot);
  ctx->docroot.front_controller = conf->front_controller;
  ctx->docroot.worker_file = conf->worker_script;
  ctx->docroot.worker_name = conf->worker_name;
  ctx->docroot.index_files = conf->index_files;
  ctx->docroot.allow_symlinks = conf->allow_symlinks;
  ctx->route_cache = tusk_route_cache_create((uint64_t)(conf->file_cache_ttl * 1000));
  if (conf->access_log) {
    if (!strcmp(conf->access_log, "-")) {
      ctx->access_log = stderr;
    } else {
      ctx->access_log = fopen(conf->access_log, "a");
      if (!ctx->access_log) {
        snprintf(err, errlen, "cannot open access log %s: %s", conf->access_log, strerror(errno));
        close(ctx->docroot.fd);
        return -1;
      }
    }
  }
  return 0;
}

void tusk_http_ctx_dispose(tusk_http_ctx_t *ctx) {
  tusk_route_cache_destroy(ctx->route_cache);
  tusk_http_zcache_destroy(ctx);
  ctx->route_cache = NULL;
  if (ctx->access_log && ctx->access_log != stderr) fclose(ctx->access_log);
  ctx->access_log = NULL;
  if (ctx->docroot.fd >= 0) close(ctx->docroot.fd);
  ctx->docroot.fd = -1;
}
