#include "http/h2_conn.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/common.h"
#include "core/log.h"
#include "http/compress.h"
#include "http/h1_conn.h"
#include "http/response.h"
#include "proc/channel.h"

#define STREAM_OF(j) ((h2_stream_t *)((char *)(j) - offsetof(h2_stream_t, job)))
#define SEND_BATCH (256 * 1024)
/* Rapid reset (CVE-2023-44487): streams the client cancels while their
 * request is with PHP. More than this many per window ends the connection. */
#define RESET_WINDOW_MS 10000
/* Ranges of stream ids the client skipped that are remembered. */
#define SKIPPED_MAX 16

typedef struct h2_hdr_s {
  uint32_t name_off, name_len, value_off, value_len;
} h2_hdr_t;

typedef struct h2_stream_s {
  tusk_http_job_t job;
  tusk_h2_t *h;
  int32_t id;
  /* Request. */
  tusk_buf_t hstore; /* names and values, NUL-terminated each */
  h2_hdr_t *hidx;
  size_t nh, hcap, hbytes;
  long method, path, authority; /* value offsets into hstore, -1 when absent */
  size_t method_len, path_len, authority_len;
  tusk_buf_t body;
  int has_body;
  int bad;          /* a status to answer instead of running the request */
  int dispatched;
  int is_head;
  /* Response. */
  int responded;    /* HEADERS submitted */
  int eof;          /* no more body after out */
  int deferred;     /* the data source said DEFERRED */
  int rst_after;    /* RST_STREAM(NO_ERROR) once the response is sent */
  int closed;       /* nghttp2 closed the stream: free at a safe point */
  tusk_buf_t php_head;
  tusk_buf_t out;
  size_t out_off;
  int fd;
  off_t file_off;
  size_t file_left;
  int status;
  tusk_encoder_t *enc; /* compressing a streamed PHP response */
  int enc_kind;
  int sse;             /* text/event-stream: keep-alive comments while quiet */
  char sse_tail[2];    /* its last two bytes: a comment goes only between events */
  uint64_t sse_last_ms; /* when PHP last sent some of it */
  uint64_t sent;
  uint64_t started_ms;
  struct h2_stream_s *prev, *next;
  struct h2_stream_s *ready_next; /* complete, to dispatch after the input is parsed */
} h2_stream_t;

struct tusk_h2_s {
  tusk_h1_conn_t *c;
  tusk_http_ctx_t *ctx;
  nghttp2_session *session;
  h2_stream_t *streams; /* open */
  h2_stream_t *dead;    /* closed, to free at a safe point */
  h2_stream_t *ready, **ready_tail; /* complete requests found while parsing */
  int nstreams;
  int in_recv;
  int in_send;
  int draining;
  int failed;
  uint64_t reset_window_start;
  int resets;
  /* Stream ids: the highest the client sent HEADERS on, and ranges it jumped over
   * (those streams are closed without ever having been open, RFC 9113
   * 5.1.1; nghttp2 ignores a HEADERS on them instead of failing). */
  int32_t last_opened;
  struct {
    int32_t lo, hi;
  } skipped[SKIPPED_MAX];
  int nskipped, skipped_next;
};

static void flush(tusk_h2_t *h);

/* ---- streams ----------------------------------------------------------------------- */

static const tusk_http_job_ops_t h2_job_ops;

static h2_stream_t *stream_new(tusk_h2_t *h, int32_t id) {
  h2_stream_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->job.ops = &h2_job_ops;
  s->h = h;
  s->id = id;
  s->method = s->path = s->authority = -1;
  s->fd = -1;
  s->started_ms = uv_now(h->ctx->loop);
  s->next = h->streams;
  if (h->streams) h->streams->prev = s;
  h->streams = s;
  h->nstreams++;
  return s;
}

static void stream_free(h2_stream_t *s) {
  if (s->fd >= 0) close(s->fd);
  tusk_buf_dispose(&s->hstore);
  free(s->hidx);
  tusk_buf_dispose(&s->body);
  tusk_buf_dispose(&s->php_head);
  tusk_buf_dispose(&s->out);
  tusk_buf_dispose(&s->job.frame);
  tusk_encoder_destroy(s->enc);
  free(s);
}

/* nghttp2 closed the stream: cancel its PHP job, park it on the dead list
 * (job callbacks may be on the stack), free later. */
static void stream_close(h2_stream_t *s) {
  tusk_h2_t *h = s->h;
  if (s->closed) return;
  s->closed = 1;
  if (s->job.worker || s->job.queued) h->ctx->php_cancel(&s->job);
  if (s->prev) s->prev->next = s->next;
  else h->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  h->nstreams--;
  s->prev = NULL;
  s->next = h->dead;
  h->dead = s;
}

/* Stores one request field (name lower-cased), indexing it unless it is a
 * pseudo-header. Returns the value's offset in hstore, or -1 (no memory). */
static long stream_add(h2_stream_t *s, const char *name, size_t nl, const char *value, size_t vl) {
  if (name[0] != ':' && s->nh == s->hcap) {
    size_t cap = s->hcap ? s->hcap * 2 : 16;
    h2_hdr_t *x = realloc(s->hidx, cap * sizeof *x);
    if (!x) return -1;
    s->hidx = x;
    s->hcap = cap;
  }
  size_t off = s->hstore.len;
  if (tusk_buf_append(&s->hstore, name, nl) != 0 || tusk_buf_append(&s->hstore, "", 1) != 0 ||
      tusk_buf_append(&s->hstore, value, vl) != 0 || tusk_buf_append(&s->hstore, "", 1) != 0) {
    return -1;
  }
  for (size_t k = 0; k < nl; k++) {
    char ch = s->hstore.data[off + k];
    if (ch >= 'A' && ch <= 'Z') s->hstore.data[off + k] = (char)(ch + 32);
  }
  if (name[0] != ':') {
    s->hidx[s->nh++] = (h2_hdr_t){(uint32_t)off, (uint32_t)nl, (uint32_t)(off + nl + 1), (uint32_t)vl};
  }
  return (long)(off + nl + 1);
}

static void reap(tusk_h2_t *h) {
  while (h->dead) {
    h2_stream_t *s = h->dead;
    h->dead = s->next;
    stream_free(s);
  }
}

/* The value of a request header (lower-case name), NUL-terminated in
 * hstore, or NULL. */
static const char *stream_header(const h2_stream_t *s, const char *name, size_t *len) {
  for (size_t i = 0; i < s->nh; i++) {
    if (!strcmp(s->hstore.data + s->hidx[i].name_off, name)) {
      *len = s->hidx[i].value_len;
      return s->hstore.data + s->hidx[i].value_off;
    }
  }
  return NULL;
}

static void access_log(h2_stream_t *s) {
  FILE *f = s->h->ctx->access_log;
  if (!f || s->method < 0) return;
  char date[32];
  tusk_http_date_format(time(NULL), date);
  size_t unused;
  const char *ref = stream_header(s, "referer", &unused), *ua = stream_header(s, "user-agent", &unused);
  fprintf(f, "%s - - [%s] \"%s %s HTTP/2.0\" %d %llu \"%s\" \"%s\" %llums\n", s->h->c->remote_addr, date,
          s->hstore.data + s->method, s->path >= 0 ? s->hstore.data + s->path : "-", s->status,
          (unsigned long long)s->sent, ref ? ref : "-", ua ? ua : "-",
          (unsigned long long)(uv_now(s->h->ctx->loop) - s->started_ms));
  fflush(f);
}

/* ---- responses ------------------------------------------------------------------------ */

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *user) {
  h2_stream_t *s = source->ptr;
  if (s->fd >= 0) {
    size_t want = TUSK_MIN(length, s->file_left);
    ssize_t n = pread(s->fd, buf, want, s->file_off);
    if (n <= 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the file shrank: reset the stream */
    s->file_off += n;
    s->file_left -= (size_t)n;
    s->sent += (uint64_t)n;
    if (s->file_left == 0) {
      close(s->fd);
      s->fd = -1;
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return n;
  }
  size_t avail = s->out.len - s->out_off;
  if (avail == 0) {
    if (s->eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    s->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = TUSK_MIN(length, avail);
  memcpy(buf, s->out.data + s->out_off, n);
  s->out_off += n;
  s->sent += n;
  if (s->out_off == s->out.len) {
    tusk_buf_reset(&s->out);
    s->out_off = 0;
    if (s->eof) *flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  return (ssize_t)n;
}

/* Headers that do not exist in HTTP/2 (RFC 9113 8.2.2). */
static int connection_specific(const char *n, size_t len) {
  return (len == 10 && !strncasecmp(n, "connection", 10)) || (len == 10 && !strncasecmp(n, "keep-alive", 10)) ||
         (len == 16 && !strncasecmp(n, "proxy-connection", 16)) ||
         (len == 17 && !strncasecmp(n, "transfer-encoding", 17)) || (len == 7 && !strncasecmp(n, "upgrade", 7));
}

/* Response fields for nghttp2: names lower-cased into one store, as
 * offsets while the store grows, made pointers by nv_done(). */
typedef struct {
  nghttp2_nv *nv;
  size_t n, cap;
  tusk_buf_t store;
} nvlist_t;

static void nv_init(nvlist_t *l) {
  memset(l, 0, sizeof *l);
  tusk_buf_init(&l->store);
}

static void nv_dispose(nvlist_t *l) {
  free(l->nv);
  tusk_buf_dispose(&l->store);
}

/* Appends to store and records offsets; pointers are fixed up in nv_done. */
static int nv_add(nvlist_t *l, const char *name, size_t nl, const char *value, size_t vl) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    nghttp2_nv *nv = realloc(l->nv, cap * sizeof *nv);
    if (!nv) return TUSK_ENOMEM;
    l->nv = nv;
    l->cap = cap;
  }
  size_t no = l->store.len;
  if (tusk_buf_append(&l->store, name, nl) != 0 || tusk_buf_append(&l->store, value, vl) != 0) return TUSK_ENOMEM;
  for (size_t i = 0; i < nl; i++) {
    char ch = l->store.data[no + i];
    if (ch >= 'A' && ch <= 'Z') l->store.data[no + i] = (char)(ch + 32);
  }
  /* Offsets for now (the store may still move). */
  l->nv[l->n] = (nghttp2_nv){(uint8_t *)(uintptr_t)no, (uint8_t *)(uintptr_t)(no + nl), nl, vl, NGHTTP2_NV_FLAG_NONE};
  l->n++;
  return 0;
}

static void nv_done(nvlist_t *l) {
  for (size_t i = 0; i < l->n; i++) {
    l->nv[i].name = (uint8_t *)l->store.data + (uintptr_t)l->nv[i].name;
    l->nv[i].value = (uint8_t *)l->store.data + (uintptr_t)l->nv[i].value;
  }
}

/* Adds header lines; returns the Content-Length PHP declared, or -1.
 * Sets *has_date / *has_server. */
static long long nv_add_lines(nvlist_t *l, const char *lines, size_t ll, int only_links, int *has_date,
                              int *has_server) {
  long long cl = -1;
  const char *p = lines, *end = lines + ll;
  while (p < end) {
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    if (!eol) eol = end;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && colon > p) {
      size_t nl = (size_t)(colon - p);
      const char *v = colon + 1;
      while (v < eol && (*v == ' ' || *v == '\t')) v++;
      size_t vl = (size_t)(eol - v);
      if (only_links) {
        if (nl == 4 && !strncasecmp(p, "Link", 4)) nv_add(l, p, nl, v, vl);
      } else if (nl == 14 && !strncasecmp(p, "Content-Length", 14)) {
        cl = atoll(v);
      } else if (!connection_specific(p, nl)) {
        if (nl == 4 && !strncasecmp(p, "Date", 4)) *has_date = 1;
        if (nl == 6 && !strncasecmp(p, "Server", 6)) *has_server = 1;
        nv_add(l, p, nl, v, vl);
      }
    }
    p = eol + 2;
  }
  return cl;
}

static int bodyless(int status) { return status < 200 || status == 204 || status == 304; }

/* Submits the response head. content_length < 0: unknown. with_body: a
 * data source follows (deferred until data arrives). */
static int submit_head(h2_stream_t *s, int status, const char *lines, size_t ll, long long content_length,
                       int with_body) {
  nvlist_t l;
  nv_init(&l);
  char st[8];
  snprintf(st, sizeof st, "%d", status);
  nv_add(&l, ":status", 7, st, strlen(st));
  int has_date = 0, has_server = 0;
  long long php_cl = nv_add_lines(&l, lines, ll, 0, &has_date, &has_server);
  if (!has_server) nv_add(&l, "server", 6, "tusk", 4);
  if (!has_date) {
    const char *d = tusk_http_date_now();
    nv_add(&l, "date", 4, d, strlen(d));
  }
  if (!bodyless(status)) {
    char cl[24];
    if (content_length < 0 && php_cl >= 0 && s->is_head) content_length = php_cl;
    if (content_length >= 0) {
      snprintf(cl, sizeof cl, "%lld", content_length);
      nv_add(&l, "content-length", 14, cl, strlen(cl));
    }
  }
  nv_done(&l);
  s->status = status;
  s->responded = 1;
  nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
  int rc = nghttp2_submit_response(s->h->session, s->id, l.nv, l.n, with_body ? &prd : NULL);
  nv_dispose(&l);
  if (!with_body) access_log(s);
  return rc == 0 ? 0 : TUSK_EPROTO;
}

static void respond_simple(h2_stream_t *s, int status, const char *lines, size_t ll) {
  tusk_buf_t body;
  tusk_buf_init(&body);
  if (status >= 400) tusk_http_error_body(&body, status);
  tusk_buf_t hdrs;
  tusk_buf_init(&hdrs);
  tusk_buf_append(&hdrs, lines, ll);
  if (status >= 400) tusk_buf_append_str(&hdrs, "Content-Type: text/html; charset=utf-8\r\n");
  int with_body = body.len > 0 && !s->is_head;
  if (with_body) {
    tusk_buf_reset(&s->out);
    tusk_buf_append(&s->out, body.data, body.len);
    s->eof = 1;
  }
  submit_head(s, status, hdrs.data ? hdrs.data : "", hdrs.len, bodyless(status) ? -1 : (long long)body.len,
              with_body);
  tusk_buf_dispose(&hdrs);
  tusk_buf_dispose(&body);
}


static void serve_static(h2_stream_t *s, const tusk_http_req_t *rq, tusk_route_t *r) {
  tusk_static_plan_t p;
  tusk_http_static_plan(s->h->ctx, rq, r, s->is_head, &p);
  if (p.status == 405 || p.status == 204) {
    respond_simple(s, p.status, p.head.data, p.head.len);
    tusk_buf_dispose(&p.head);
    return;
  }
  int with_body = !s->is_head && (p.fd >= 0 || p.mem);
  if (p.mem) {
    tusk_buf_reset(&s->out);
    tusk_buf_append(&s->out, p.mem, p.len);
    s->eof = 1;
  } else if (p.fd >= 0) {
    s->fd = p.fd;
    s->file_off = p.off;
    s->file_left = p.len;
  }
  submit_head(s, p.status, p.head.data ? p.head.data : "", p.head.len, p.status == 304 ? -1 : (long long)p.len,
              with_body);
  tusk_buf_dispose(&p.head);
}

/* The request is complete: route it. */
static void dispatch(h2_stream_t *s) {
  tusk_h2_t *h = s->h;
  if (s->dispatched) return;
  s->dispatched = 1;
  if (s->bad) {
    respond_simple(s, s->bad, "", 0);
    return;
  }
  if (s->method < 0 || s->path < 0) {
    respond_simple(s, 400, "", 0);
    return;
  }
  /* Header views into hstore, with Host from :authority when absent (PHP
   * apps read $_SERVER['HTTP_HOST']). */
  size_t n = s->nh;
  tusk_h1_header_t *hv = calloc(n + 1, sizeof *hv);
  if (!hv) {
    respond_simple(s, 500, "", 0);
    return;
  }
  const char *host = NULL;
  size_t host_len = 0;
  for (size_t i = 0; i < n; i++) {
    hv[i].name = s->hstore.data + s->hidx[i].name_off;
    hv[i].name_len = s->hidx[i].name_len;
    hv[i].value = s->hstore.data + s->hidx[i].value_off;
    hv[i].value_len = s->hidx[i].value_len;
    if (hv[i].name_len == 4 && !memcmp(hv[i].name, "host", 4)) {
      host = hv[i].value;
      host_len = hv[i].value_len;
    }
  }
  if (s->authority >= 0) {
    /* RFC 9113 8.3.1: a Host naming another entity than :authority makes
     * the request malformed; PHP would otherwise see one and the router
     * (virtual hosts, TLS SNI checks) the other. */
    if (host && (host_len != s->authority_len ||
                 strncasecmp(host, s->hstore.data + s->authority, host_len) != 0)) {
      free(hv);
      TUSK_DEBUG("h2 stream %d: Host differs from :authority: 400", s->id);
      respond_simple(s, 400, "", 0);
      return;
    }
    if (!host) hv[n++] = (tusk_h1_header_t){"host", 4, s->hstore.data + s->authority, s->authority_len};
    host = s->hstore.data + s->authority;
    host_len = s->authority_len;
  }
  tusk_h1_conn_t *c = h->c;
  tusk_http_req_t rq;
  memset(&rq, 0, sizeof rq);
  rq.method = s->hstore.data + s->method;
  rq.method_len = s->method_len;
  rq.target = s->hstore.data + s->path;
  rq.target_len = s->path_len;
  rq.host = host;
  rq.host_len = host_len;
  rq.headers = hv;
  rq.num_headers = n;
  rq.protocol = "HTTP/2.0";
  rq.body = s->body.data;
  rq.body_len = s->body.len;
  rq.has_body = s->has_body || s->body.len > 0;
  rq.remote_addr = c->remote_addr;
  rq.remote_port = c->remote_port;
  rq.local_addr = c->local_addr;
  rq.local_port = c->local_port;
  tusk__conn_tls_info(c, &rq.tls_version, &rq.tls_cipher, &rq.tls_sni);
  tusk_http_decision_t d;
  tusk_http_decide(h->ctx, &rq, &d, &s->job);
  switch (d.act) {
    case TUSK_ACT_STATIC:
      serve_static(s, &rq, &d.route);
      break;
    case TUSK_ACT_PHP:
      if (h->ctx->php_submit(&s->job) != 0) {
        tusk__http_warn_queue_full(h->ctx, s->job.what);
        static const char ra[] = "Retry-After: 1\r\n";
        respond_simple(s, 503, ra, sizeof ra - 1);
      }
      break;
    default:
      if (d.why) TUSK_INFO("%s:%d: %d on stream %d (%s)", c->remote_addr, c->remote_port, d.status, s->id, d.why);
      respond_simple(s, d.status, d.headers.data ? d.headers.data : "", d.headers.len);
      break;
  }
  tusk_buf_dispose(&d.headers);
  free(hv); /* after the static plan, which reads the headers */
}

/* ---- PHP's response ------------------------------------------------------------------- */

static int php_status(h2_stream_t *s) {
  tusk_chan_head_t h;
  tusk_chan_head_parse(s->php_head.data, s->php_head.len, &h);
  return h.status;
}

static void php_head(tusk_http_job_t *j, const char *payload, size_t len) {
  h2_stream_t *s = STREAM_OF(j);
  tusk_buf_reset(&s->php_head);
  tusk_buf_append(&s->php_head, payload, len);
  s->sse = tusk__head_is_event_stream(payload, len);
  s->sse_tail[0] = s->sse_tail[1] = '\n';
}

static void php_info(tusk_http_job_t *j, const char *payload, size_t len) {
  h2_stream_t *s = STREAM_OF(j);
  if (s->closed || s->responded) return;
  tusk_chan_head_t h;
  tusk_chan_head_parse(payload, len, &h);
  if (h.status < 100 || h.status > 199 || h.status == 101) return;
  nvlist_t l;
  nv_init(&l);
  char sts[8];
  snprintf(sts, sizeof sts, "%d", h.status);
  nv_add(&l, ":status", 7, sts, strlen(sts));
  int d1, d2;
  nv_add_lines(&l, h.lines, h.lines_len, 1, &d1, &d2);
  nv_done(&l);
  nghttp2_submit_headers(s->h->session, NGHTTP2_FLAG_NONE, s->id, NULL, l.nv, l.n, NULL);
  nv_dispose(&l);
  flush(s->h);
}

/* Compression of PHP's response: the encoding the client and the
 * response allow (known_len -1: streamed). */
static int pick_encoding(h2_stream_t *s, long long known_len) {
  if (s->is_head || !s->h->ctx->conf->compress_mask) return TUSK_ENC_NONE;
  size_t al;
  const char *accept = stream_header(s, "accept-encoding", &al);
  if (!accept) return TUSK_ENC_NONE;
  tusk_chan_head_t h;
  tusk_chan_head_parse(s->php_head.data, s->php_head.len, &h);
  return tusk_http_pick_encoding(s->h->ctx, accept, al, h.status, h.lines, h.lines_len, known_len);
}

/* streamed: the body goes on after this (flush); else out is all of it. */
static void start_php_response(h2_stream_t *s, int streamed) {
  tusk_chan_head_t h;
  tusk_chan_head_parse(s->php_head.data, s->php_head.len, &h);
  int status = h.status;
  const char *lines = h.lines;
  size_t ll = h.lines_len;
  int with_body = !s->is_head && !bodyless(status);
  if (!with_body) tusk_buf_reset(&s->out);
  s->enc_kind = with_body ? pick_encoding(s, streamed ? -1 : (long long)s->out.len) : 0;
  tusk_buf_t z;
  tusk_buf_init(&z);
  if (s->enc_kind) {
    int rc;
    if (streamed) {
      s->enc = tusk_encoder_create(s->enc_kind, -1);
      rc = s->enc ? tusk_encoder_write(s->enc, s->out.data, s->out.len, 1, &z) : TUSK_ENOMEM;
    } else {
      rc = tusk_compress_buffer(s->enc_kind, -1, s->out.data, s->out.len, &z);
    }
    if (rc == 0) {
      tusk_buf_dispose(&s->out);
      s->out = z;
      tusk_buf_init(&z);
    } else {
      tusk_encoder_destroy(s->enc);
      s->enc = NULL;
      s->enc_kind = 0;
    }
  }
  tusk_buf_dispose(&z);
  tusk_buf_t all;
  tusk_buf_init(&all);
  tusk_buf_append(&all, lines, ll);
  if (s->enc_kind) {
    tusk_buf_printf(&all, "Content-Encoding: %s\r\nVary: Accept-Encoding\r\n", tusk_compress_name(s->enc_kind));
  }
  /* HEAD: the body was not kept, its length is unknown (PHP's own
   * Content-Length is used; never 0 for a non-empty GET). */
  submit_head(s, status, all.data ? all.data : "", all.len, streamed || s->is_head ? -1 : (long long)s->out.len,
              with_body);
  tusk_buf_dispose(&all);
}

/* Appends PHP body bytes to out, through the encoder when there is one. */
static void out_append(h2_stream_t *s, const char *data, size_t len, int mode) {
  if (s->enc) {
    tusk_encoder_write(s->enc, data, len, mode, &s->out);
    return;
  }
  tusk_buf_append(&s->out, data, len);
}

static void php_body(tusk_http_job_t *j, const char *data, size_t len, int flush_now) {
  h2_stream_t *s = STREAM_OF(j);
  if (s->closed) return;
  if (s->sse && flush_now) {
    double ka = s->h->ctx->conf->sse_keepalive;
    if (len >= 2) memcpy(s->sse_tail, data + len - 2, 2);
    else if (len == 1) s->sse_tail[0] = s->sse_tail[1], s->sse_tail[1] = data[0];
    s->sse_last_ms = uv_now(s->h->ctx->loop);
    if (ka > 0) tusk__conn_timer_within(s->h->c, (uint64_t)(ka * 1000));
  }
  if (!s->is_head && !bodyless(php_status(s))) {
    if (s->responded) out_append(s, data, len, flush_now ? 1 : 0);
    else tusk_buf_append(&s->out, data, len);
  }
  /* Bounded like HTTP/1.1: a long unflushed response starts streaming, and
   * a started one is handed on in 64 KiB steps (the pool pauses PHP when
   * the client does not take them). */
  if (!flush_now) {
    if (!s->responded && s->out.len < s->h->ctx->conf->output_buffer) return;
    if (s->responded && s->out.len - s->out_off < 64 * 1024) return;
  }
  if (!s->responded) start_php_response(s, 1);
  else if (s->deferred) {
    s->deferred = 0;
    nghttp2_session_resume_data(s->h->session, s->id);
  }
  flush(s->h);
}

static void php_end(tusk_http_job_t *j) {
  h2_stream_t *s = STREAM_OF(j);
  s->job.worker = NULL;
  if (s->closed) return;
  s->eof = 1;
  if (!s->responded) {
    start_php_response(s, 0);
  } else if (s->enc) {
    out_append(s, NULL, 0, 2);
  }
  if (s->responded && s->deferred) {
    s->deferred = 0;
    nghttp2_session_resume_data(s->h->session, s->id);
  }
  flush(s->h);
}

static void php_fail(tusk_http_job_t *j, int status) {
  h2_stream_t *s = STREAM_OF(j);
  s->job.worker = NULL;
  if (s->closed) return;
  if (s->responded) {
    nghttp2_submit_rst_stream(s->h->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
  } else {
    tusk_buf_reset(&s->out);
    respond_simple(s, status, "", 0);
  }
  flush(s->h);
}

static int php_aborted(tusk_http_job_t *j) { return STREAM_OF(j)->closed; }

static size_t php_pending(tusk_http_job_t *j) {
  h2_stream_t *s = STREAM_OF(j);
  return s->closed ? 0 : s->out.len - s->out_off;
}

static const tusk_http_job_ops_t h2_job_ops = {php_head, php_info, php_body, php_end, php_fail, php_aborted, php_pending};

/* ---- nghttp2 callbacks ------------------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
  tusk_h2_t *h = user;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  h2_stream_t *s = stream_new(h, frame->hd.stream_id);
  if (!s) return NGHTTP2_ERR_CALLBACK_FAILURE;
  nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
  return 0;
}

/* A HEADERS frame on a stream id the client skipped earlier (numerically
 * smaller than one it used since, so never sent HEADERS on) is a
 * connection error of type PROTOCOL_ERROR (RFC 9113 5.1.1). Ids that did
 * carry HEADERS are left to nghttp2, which ignores late frames on them
 * (trailers crossing our RST_STREAM are not an error). */
static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user) {
  tusk_h2_t *h = user;
  int32_t id = hd->stream_id;
  if (hd->type != NGHTTP2_HEADERS || !(id & 1) || id == h->last_opened) return 0;
  if (id > h->last_opened) {
    if (id > h->last_opened + 2) {
      h->skipped[h->skipped_next].lo = h->last_opened + 2;
      h->skipped[h->skipped_next].hi = id - 2;
      h->skipped_next = (h->skipped_next + 1) % SKIPPED_MAX;
      if (h->nskipped < SKIPPED_MAX) h->nskipped++;
    }
    h->last_opened = id;
    return 0;
  }
  for (int i = 0; i < h->nskipped; i++) {
    if (hd->stream_id >= h->skipped[i].lo && hd->stream_id <= h->skipped[i].hi) {
      TUSK_DEBUG("%s:%d: HTTP/2 HEADERS on stream %d, which was skipped (last opened %d)", h->c->remote_addr,
                 h->c->remote_port, hd->stream_id, h->last_opened);
      nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR);
      break;
    }
  }
  return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *user) {
  tusk_h2_t *h = user;
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  h2_stream_t *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!s || s->bad) return 0;
  const tusk_conf_t *conf = h->ctx->conf;
  s->hbytes += nl + vl + 32;
  if (s->hbytes > conf->max_head) {
    s->bad = 431;
    TUSK_INFO("%s:%d: 431 header list of stream %d over --max-header-size %zu", h->c->remote_addr,
              h->c->remote_port, s->id, conf->max_head);
    return 0;
  }
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0; /* trailers: ignored */
  if (nl > 0 && name[0] != ':' && s->nh >= conf->max_headers) {
    s->bad = 431;
    TUSK_INFO("%s:%d: 431 stream %d has more than --max-headers %zu", h->c->remote_addr, h->c->remote_port,
              s->id, (size_t)conf->max_headers);
    return 0;
  }
  /* nghttp2 has checked names (lower case, no empty name) and pseudo-headers. */
  long off = stream_add(s, (const char *)name, nl, (const char *)value, vl);
  if (off < 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (name[0] == ':') {
    if (nl == 7 && !memcmp(name, ":method", 7)) {
      s->method = off;
      s->method_len = vl;
      s->is_head = vl == 4 && !memcmp(value, "HEAD", 4);
    } else if (nl == 5 && !memcmp(name, ":path", 5)) {
      s->path = off;
      s->path_len = vl;
      if (vl > conf->max_uri) s->bad = 414;
    } else if (nl == 10 && !memcmp(name, ":authority", 10)) {
      s->authority = off;
      s->authority_len = vl;
    }
    return 0;
  }
  if (nl == 14 && !memcmp(name, "content-length", 14)) {
    s->has_body = 1;
    char tmp[24];
    size_t k = TUSK_MIN(vl, sizeof tmp - 1);
    memcpy(tmp, value, k);
    tmp[k] = '\0';
    if (strtoull(tmp, NULL, 10) > conf->max_body) s->bad = 413;
  }
  return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
  tusk_h2_t *h = user;
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  h2_stream_t *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!s || s->dispatched) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && (s->bad == 413 || s->bad == 431 || s->bad == 414)) {
    /* Answer now; the rest of the request is not wanted. */
    dispatch(s);
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) s->rst_after = 1;
    return 0;
  }
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !s->ready_next && h->ready_tail != &s->ready_next) {
    /* Dispatched once nghttp2_session_mem_recv() returns: a PHP request
     * may run inline (direct mode), and its output can only be sent from
     * outside nghttp2's callbacks. Streams the same input resets are
     * never started. */
    *h->ready_tail = s;
    h->ready_tail = &s->ready_next;
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *user) {
  tusk_h2_t *h = user;
  h2_stream_t *s = nghttp2_session_get_stream_user_data(session, id);
  if (!s || s->dispatched || s->bad) return 0;
  if (s->body.len + len > h->ctx->conf->max_body) {
    TUSK_INFO("%s:%d: 413 body of stream %d is over --max-body-size %zu", h->c->remote_addr, h->c->remote_port, id,
              h->ctx->conf->max_body);
    s->bad = 413;
    dispatch(s);
    s->rst_after = 1;
    return 0;
  }
  if (tusk_buf_append(&s->body, data, len) != 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
  if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
      !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    return 0;
  }
  h2_stream_t *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!s) return 0;
  if (frame->hd.type == NGHTTP2_DATA) access_log(s);
  if (s->rst_after) nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *user) {
  tusk_h2_t *h = user;
  h2_stream_t *s = nghttp2_session_get_stream_user_data(session, id);
  if (!s) return 0;
  if (error_code != NGHTTP2_NO_ERROR && s->dispatched && (s->job.worker || s->job.queued)) {
    /* Cancelled while PHP had it: count toward the rapid-reset bound. */
    uint64_t now = uv_now(h->ctx->loop);
    if (now - h->reset_window_start > RESET_WINDOW_MS) {
      h->reset_window_start = now;
      h->resets = 0;
    }
    if (++h->resets > 2 * (int)h->ctx->conf->h2_max_streams && !h->failed) {
      TUSK_WARN("%s:%d: HTTP/2 client cancelled %d requests within %ds (rapid reset): closing the connection",
                h->c->remote_addr, h->c->remote_port, h->resets, RESET_WINDOW_MS / 1000);
      h->failed = 1;
      nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
    }
  }
  nghttp2_session_set_stream_user_data(session, id, NULL);
  stream_close(s);
  return 0;
}

static int on_error(nghttp2_session *session, int lib_error_code, const char *msg, size_t len, void *user) {
  tusk_h2_t *h = user;
  TUSK_DEBUG("%s:%d: HTTP/2: %.*s", h->c->remote_addr, h->c->remote_port, (int)len, msg);
  return 0;
}

/* ---- the session ------------------------------------------------------------------------- */

/* Sends what nghttp2 has, up to a batch, unless writes are still queued
 * (then the connection's write callback calls back). */
static void flush(tusk_h2_t *h) {
  if (h->in_recv || h->in_send || h->c->closing) return;
again:
  h->in_send = 1;
  tusk_buf_t out;
  tusk_buf_init(&out);
  while (out.len < SEND_BATCH) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(h->session, &data);
    if (n < 0) {
      h->failed = 1;
      break;
    }
    if (n == 0) break;
    if (tusk_buf_append(&out, data, (size_t)n) != 0) {
      h->failed = 1;
      break;
    }
  }
  h->in_send = 0;
  int full = out.len >= SEND_BATCH;
  if (out.len) tusk__conn_write(h->c, &out);
  else tusk_buf_dispose(&out);
  if (h->c->closing) return;
  /* Written at once and more to send: go on (otherwise the write callback
   * brings us back). */
  if (full && h->c->writes_pending == 0 && !h->failed) goto again;
  if (h->failed || (!nghttp2_session_want_read(h->session) && !nghttp2_session_want_write(h->session))) {
    tusk__conn_close_after_writes(h->c);
  }
}

int64_t tusk_h2_sse_keepalive(tusk_h2_t *h) {
  double ka = h->ctx->conf->sse_keepalive;
  if (ka <= 0 || h->c->closing) return -1;
  uint64_t now = uv_now(h->ctx->loop), every = (uint64_t)(ka * 1000);
  int64_t next = -1;
  int sent = 0;
  for (h2_stream_t *s = h->streams; s; s = s->next) {
    if (!s->sse || !s->responded || s->eof || s->closed || !s->job.worker) continue;
    uint64_t due = s->sse_last_ms + every;
    if (now >= due && s->sse_tail[0] == '\n' && s->sse_tail[1] == '\n') {
      static const char ka_line[] = ": keep-alive\n\n";
      out_append(s, ka_line, sizeof ka_line - 1, 1);
      if (s->deferred) {
        s->deferred = 0;
        nghttp2_session_resume_data(h->session, s->id);
      }
      s->sse_last_ms = now;
      due = now + every;
      sent = 1;
    }
    int64_t in = due > now ? (int64_t)(due - now) : (int64_t)every;
    if (next < 0 || in < next) next = in;
  }
  if (sent) flush(h);
  return next;
}

void tusk_h2_flush(tusk_h2_t *h) {
  reap(h);
  flush(h);
}

int tusk_h2_feed(tusk_h2_t *h, const char *data, size_t len) {
  reap(h);
  h->in_recv = 1;
  ssize_t n = nghttp2_session_mem_recv(h->session, (const uint8_t *)data, len);
  h->in_recv = 0;
  /* Requests completed by this input, in order (nothing here frees a
   * closed stream before the next tusk_h2_feed()/tusk_h2_flush()). */
  h2_stream_t *r = h->ready;
  h->ready = NULL;
  h->ready_tail = &h->ready;
  while (r) {
    h2_stream_t *next = r->ready_next;
    r->ready_next = NULL;
    if (n >= 0 && !r->closed && !h->c->closing) dispatch(r);
    r = next;
  }
  if (n < 0) {
    TUSK_DEBUG("%s:%d: HTTP/2 session error: %s", h->c->remote_addr, h->c->remote_port,
               nghttp2_strerror((int)n));
    /* nghttp2 returns a fatal error (e.g. too many CONTINUATION frames)
     * without queueing a GOAWAY: tell the client why before closing (RFC
     * 9113 5.4.1). Not when flooded: its output queue is what is full. */
    if (n != NGHTTP2_ERR_FLOODED) {
      uint32_t code = n == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS                          ? NGHTTP2_ENHANCE_YOUR_CALM
                      : n == NGHTTP2_ERR_NOMEM || n == NGHTTP2_ERR_CALLBACK_FAILURE ? NGHTTP2_INTERNAL_ERROR
                                                                                      : NGHTTP2_PROTOCOL_ERROR;
      nghttp2_session_terminate_session(h->session, code);
    }
    h->failed = 1;
  }
  flush(h);
  return h->failed ? TUSK_EPROTO : 0;
}

int tusk_h2_idle(const tusk_h2_t *h) { return h->nstreams == 0; }

int tusk_h2_draining(const tusk_h2_t *h) { return h->draining; }

void tusk_h2_drain(tusk_h2_t *h) {
  if (h->draining) return;
  h->draining = 1;
  nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->session),
                        NGHTTP2_NO_ERROR, NULL, 0);
  flush(h);
  if (h->nstreams == 0 && !h->c->closing) tusk__conn_close_after_writes(h->c);
}

tusk_h2_t *tusk_h2_create(tusk_h1_conn_t *c, const tusk_http_req_t *upgrade, const char *settings,
                          size_t settings_len) {
  tusk_h2_t *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->c = c;
  h->ctx = c->ctx;
  h->ready_tail = &h->ready;
  h->last_opened = -1;
  const tusk_conf_t *conf = c->ctx->conf;
  nghttp2_session_callbacks *cb;
  if (nghttp2_session_callbacks_new(&cb) != 0) {
    free(h);
    return NULL;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_session_callbacks_set_error_callback2(cb, on_error);
  nghttp2_option *opt;
  nghttp2_option_new(&opt);
  /* CONTINUATION flood (CVE-2024-27316-like): a header block may span at
   * most this many CONTINUATION frames. */
  nghttp2_option_set_max_continuations(opt, 16);
  /* Rapid reset (CVE-2023-44487): a token bucket of RST_STREAMs. */
  nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
  nghttp2_option_set_max_settings(opt, 32);
  int rc = nghttp2_session_server_new2(&h->session, cb, h, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rc != 0) {
    free(h);
    return NULL;
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)conf->h2_max_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)conf->max_head},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
  /* A connection-level window to match the streams'. */
  nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0, 4 << 20);
  if (upgrade) {
    h2_stream_t *s = stream_new(h, 1);
    if (!s) goto fail;
    h->last_opened = 1;
    int head = upgrade->method_len == 4 && !memcmp(upgrade->method, "HEAD", 4);
    if (nghttp2_session_upgrade2(h->session, (const uint8_t *)settings, settings_len, head, s) != 0) {
      stream_close(s);
      goto fail;
    }
    /* The HTTP/1.1 request becomes stream 1. */
    s->method = stream_add(s, ":method", 7, upgrade->method, upgrade->method_len);
    s->method_len = upgrade->method_len;
    s->path = stream_add(s, ":path", 5, upgrade->target, upgrade->target_len);
    s->path_len = upgrade->target_len;
    s->is_head = head;
    if (s->method < 0 || s->path < 0) goto fail;
    for (size_t i = 0; i < upgrade->num_headers; i++) {
      const tusk_h1_header_t *x = &upgrade->headers[i];
      if (connection_specific(x->name, x->name_len) || (x->name_len == 14 && !strncasecmp(x->name, "HTTP2-Settings", 14))) {
        continue;
      }
      if (stream_add(s, x->name, x->name_len, x->value, x->value_len) < 0) goto fail;
    }
    tusk_buf_append(&s->body, upgrade->body, upgrade->body_len);
    s->has_body = upgrade->has_body;
    dispatch(s);
  }
  return h;
fail:
  tusk_h2_destroy(h);
  return NULL;
}

void tusk_h2_destroy(tusk_h2_t *h) {
  if (!h) return;
  while (h->streams) stream_close(h->streams);
  reap(h);
  nghttp2_session_del(h->session);
  free(h);
}
