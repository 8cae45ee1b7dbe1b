#include "http/request.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "http/compress.h"
#include "http/h1_conn.h"
#include "http/mime.h"
#include "proc/channel.h"

const char *tusk_http_req_header(const tusk_http_req_t *rq, const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (size_t i = 0; i < rq->num_headers; i++) {
    const tusk_h1_header_t *h = &rq->headers[i];
    if (h->name_len == nl && !strncasecmp(h->name, name, nl)) {
      *len = h->value_len;
      return h->value;
    }
  }
  return NULL;
}

/* $_SERVER['HTTP_*'] and getallheaders(): repeated headers are joined
 * (cookies with "; ", others with ", "). */
static void add_header_vars(const tusk_http_req_t *rq, tusk_chan_req_builder_t *b) {
  char name[256];
  tusk_buf_t joined;
  tusk_buf_init(&joined);
  for (size_t i = 0; i < rq->num_headers; i++) {
    const tusk_h1_header_t *h = &rq->headers[i];
    int dup = 0;
    for (size_t j = 0; j < i && !dup; j++) {
      dup = rq->headers[j].name_len == h->name_len && !strncasecmp(rq->headers[j].name, h->name, h->name_len);
    }
    if (dup) continue;
    const char *val = h->value;
    size_t vlen = h->value_len;
    int is_cookie = h->name_len == 6 && !strncasecmp(h->name, "Cookie", 6);
    for (size_t j = i + 1; j < rq->num_headers; j++) {
      const tusk_h1_header_t *o = &rq->headers[j];
      if (o->name_len == h->name_len && !strncasecmp(o->name, h->name, h->name_len)) {
        if (val != joined.data) {
          tusk_buf_reset(&joined);
          tusk_buf_append(&joined, val, vlen);
        }
        tusk_buf_append_str(&joined, is_cookie ? "; " : ", ");
        tusk_buf_append(&joined, o->value, o->value_len);
        val = joined.data;
        vlen = joined.len;
      }
    }
    /* getallheaders(): the name as sent. */
    if (h->name_len + 1 < sizeof name) {
      name[0] = '\x01';
      memcpy(name + 1, h->name, h->name_len);
      tusk_chan_req_var(b, name, h->name_len + 1, val, vlen);
    }
    /* $_SERVER['HTTP_*']: like nginx, names with '_' are dropped (they would
     * collide with '-'), and "Proxy" is dropped (httpoxy). */
    if (h->name_len + 5 >= sizeof name || memchr(h->name, '_', h->name_len)) continue;
    if (h->name_len == 5 && !strncasecmp(h->name, "Proxy", 5)) continue;
    memcpy(name, "HTTP_", 5);
    for (size_t k = 0; k < h->name_len; k++) {
      char ch = h->name[k];
      name[5 + k] = ch == '-' ? '_' : (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
    }
    tusk_chan_req_var(b, name, h->name_len + 5, val, vlen);
  }
  tusk_buf_dispose(&joined);
}

static int build_frame(tusk_http_ctx_t *ctx, const tusk_http_req_t *rq, const tusk_route_t *r, const char *query,
                       size_t query_len, const char *uri, size_t uri_len, tusk_http_job_t *job) {
  const tusk_conf_t *conf = ctx->conf;
  tusk_buf_reset(&job->frame);
  tusk_chan_req_builder_t b;
  job->seq++;
  tusk_chan_req_begin(&b, &job->frame, job->seq);
  /* "METHOD /uri" for logs; no printf on this path (every PHP request). */
  size_t ml = TUSK_MIN(rq->method_len, 16), ul = TUSK_MIN(uri_len, 100);
  memcpy(job->what, rq->method, ml);
  job->what[ml] = ' ';
  memcpy(job->what + ml + 1, uri, ul);
  job->what[ml + 1 + ul] = '\0';
  char tmp[PATH_MAX + 64];
  tusk_chan_req_var(&b, "REQUEST_METHOD", 14, rq->method, rq->method_len);
  tusk_chan_req_var(&b, "REQUEST_URI", 11, uri, uri_len);
  tusk_chan_req_var(&b, "QUERY_STRING", 12, query ? query : "", query ? query_len : 0);
  tusk_chan_req_var_str(&b, "SCRIPT_FILENAME", r->file);
  tusk_chan_req_var_str(&b, "SCRIPT_NAME", r->script_name);
  size_t snl = TUSK_MIN(strlen(r->script_name), sizeof tmp - 1);
  size_t pil = TUSK_MIN(strlen(r->path_info), sizeof tmp - 1 - snl);
  memcpy(tmp, r->script_name, snl);
  memcpy(tmp + snl, r->path_info, pil);
  tmp[snl + pil] = '\0';
  tusk_chan_req_var_str(&b, "PHP_SELF", tmp);
  tusk_chan_req_var_str(&b, "DOCUMENT_URI", tmp);
  if (r->path_info[0]) {
    tusk_chan_req_var_str(&b, "PATH_INFO", r->path_info);
    snprintf(tmp, sizeof tmp, "%s%s", conf->docroot, r->path_info);
    tusk_chan_req_var_str(&b, "PATH_TRANSLATED", tmp);
  }
  tusk_chan_req_var_str(&b, "DOCUMENT_ROOT", conf->docroot);
  tusk_chan_req_var_str(&b, "SERVER_PROTOCOL", rq->protocol);
  tusk_chan_req_var_str(&b, "REQUEST_SCHEME", rq->tls_version ? "https" : "http");
  if (rq->tls_version) {
    /* As nginx's fastcgi_params and Apache's mod_ssl name them. */
    tusk_chan_req_var_str(&b, "HTTPS", "on");
    tusk_chan_req_var_str(&b, "SSL_PROTOCOL", rq->tls_version);
    if (rq->tls_cipher) tusk_chan_req_var_str(&b, "SSL_CIPHER", rq->tls_cipher);
    if (rq->tls_sni) tusk_chan_req_var_str(&b, "SSL_SERVER_NAME", rq->tls_sni);
  }
  tusk_chan_req_var_str(&b, "GATEWAY_INTERFACE", "CGI/1.1");
  tusk_chan_req_var_str(&b, "SERVER_SOFTWARE", "Tusk/" TUSK_VERSION);
  tusk_chan_req_var_str(&b, "REMOTE_ADDR", rq->remote_addr);
  tusk_chan_req_var(&b, "REMOTE_PORT", 11, tmp, tusk_u64_str((unsigned)rq->remote_port, tmp));
  tusk_chan_req_var_str(&b, "SERVER_ADDR", rq->local_addr);
  tusk_chan_req_var(&b, "SERVER_PORT", 11, tmp, tusk_u64_str((unsigned)rq->local_port, tmp));
  if (rq->host && rq->host_len) {
    size_t hl = rq->host_len;
    const char *h = rq->host;
    if (h[0] == '[') {
      const char *e = memchr(h, ']', hl);
      if (e) hl = (size_t)(e - h) + 1;
    } else {
      const char *colon = memchr(h, ':', hl);
      if (colon) hl = (size_t)(colon - h);
    }
    tusk_chan_req_var(&b, "SERVER_NAME", 11, h, hl);
  } else {
    tusk_chan_req_var_str(&b, "SERVER_NAME", rq->local_addr);
  }
  tusk_chan_req_var_str(&b, "REDIRECT_STATUS", "200");
  if (conf->worker_script) {
    tusk_chan_req_var_str(&b, "FRANKENPHP_WORKER", "1");
    tusk_chan_req_var_str(&b, "TUSK_WORKER", "1");
  }
  size_t ctl = 0;
  const char *ct = tusk_http_req_header(rq, "Content-Type", &ctl);
  tusk_chan_req_var(&b, "CONTENT_TYPE", 12, ct ? ct : "", ct ? ctl : 0);
  if (rq->has_body) {
    tusk_chan_req_var(&b, "CONTENT_LENGTH", 14, tmp, tusk_u64_str(rq->body_len, tmp));
  } else {
    tusk_chan_req_var_str(&b, "CONTENT_LENGTH", "");
  }
  add_header_vars(rq, &b);
  return tusk_chan_req_end(&b, rq->body, rq->body_len);
}

static void respond(tusk_http_decision_t *d, int status) {
  d->act = TUSK_ACT_RESPOND;
  d->status = status;
}

static void reject(tusk_http_decision_t *d, int status, const char *why) {
  respond(d, status);
  d->close = 1;
  d->why = why;
}

void tusk_http_decide(tusk_http_ctx_t *ctx, const tusk_http_req_t *rq, tusk_http_decision_t *d,
                      tusk_http_job_t *job) {
  d->act = TUSK_ACT_RESPOND;
  d->status = 500;
  d->close = 0;
  d->why = NULL;
  tusk_buf_init(&d->headers);
  const char *t = rq->target;
  size_t tl = rq->target_len;
  /* OPTIONS * */
  if (tl == 1 && t[0] == '*') {
    if (rq->method_len == 7 && !memcmp(rq->method, "OPTIONS", 7)) {
      tusk_buf_append_str(&d->headers, "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, QUERY\r\n");
      respond(d, 204);
    } else {
      reject(d, 400, "'*' target is only for OPTIONS");
    }
    return;
  }
  if (tl == 0) {
    reject(d, 400, "empty request target");
    return;
  }
  /* absolute-form: http://authority/path?query */
  char synth[16384]; /* "/?query" for "http://host?query" */
  if (t[0] != '/') {
    size_t i = 0;
    while (i < tl && t[i] != ':') i++;
    if (i + 3 > tl || t[i + 1] != '/' || t[i + 2] != '/') {
      reject(d, 400, "bad request target");
      return;
    }
    size_t j = i + 3;
    while (j < tl && t[j] != '/' && t[j] != '?') j++;
    if (j == tl || t[j] == '?') {
      /* "http://host" or "http://host?q": the path is "/". */
      size_t ql0 = tl - j;
      if (ql0 + 2 > sizeof synth) {
        reject(d, 414, "request target too long");
        return;
      }
      synth[0] = '/';
      memcpy(synth + 1, t + j, ql0);
      synth[ql0 + 1] = '\0';
      t = synth;
      tl = ql0 + 1;
    } else {
      t += j;
      tl -= j;
    }
  }
  const char *q = memchr(t, '?', tl);
  size_t pl = q ? (size_t)(q - t) : tl;
  const char *query = q ? q + 1 : NULL;
  size_t ql = q ? tl - pl - 1 : 0;
  char path[PATH_MAX];
  int n = tusk_path_normalize(t, pl, path, sizeof path);
  if (n < 0) {
    reject(d, -n, "bad request path");
    return;
  }
  tusk_route_t *r = &d->route;
  tusk_route_cached(ctx->route_cache, &ctx->docroot, path, uv_now(ctx->loop), r);
  switch (r->kind) {
    case TUSK_ROUTE_STATIC:
      d->act = TUSK_ACT_STATIC;
      break;
    case TUSK_ROUTE_PHP:
      if (build_frame(ctx, rq, r, query, ql, t, tl, job) != 0) {
        respond(d, 500);
        d->close = 1;
        return;
      }
      d->act = TUSK_ACT_PHP;
      break;
    case TUSK_ROUTE_REDIRECT: {
      /* The decoded path, percent-encoded again for a valid URI. */
      tusk_buf_append_str(&d->headers, "Location: ");
      static const char hex[] = "0123456789ABCDEF";
      for (const unsigned char *p = (const unsigned char *)r->file; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/-._~!$&'()*+,;=:@", *p)) {
          tusk_buf_append(&d->headers, p, 1);
        } else {
          char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
          tusk_buf_append(&d->headers, e, 3);
        }
      }
      tusk_buf_printf(&d->headers, "%s%.*s\r\n", query ? "?" : "", (int)ql, query ? query : "");
      respond(d, 301);
      break;
    }
    default:
      respond(d, r->status);
      break;
  }
}

/* ---- static files -------------------------------------------------------------- */

/* Compressed copies of static files, so a popular page is compressed once,
 * not per request (the route decides freshness: an entry matches the
 * file's device, inode, size and mtime). Per loop, no locking. */
#define ZCACHE_SLOTS 64
#define ZCACHE_MAX_FILE (1024 * 1024)
#define ZCACHE_MAX_BYTES (32 * 1024 * 1024)

typedef struct {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  int enc;
  uint64_t used;
  tusk_buf_t data;
} zentry_t;

struct tusk_zcache_s {
  zentry_t e[ZCACHE_SLOTS];
  size_t bytes;
  uint64_t tick;
};

static const tusk_buf_t *zcache_get(tusk_http_ctx_t *ctx, const tusk_route_t *r, int enc) {
  if (!ctx->zcache) {
    ctx->zcache = calloc(1, sizeof *ctx->zcache);
    if (!ctx->zcache) return NULL;
  }
  struct tusk_zcache_s *z = ctx->zcache;
  const struct stat *st = &r->st;
  zentry_t *victim = &z->e[0];
  for (int i = 0; i < ZCACHE_SLOTS; i++) {
    zentry_t *x = &z->e[i];
    if (x->data.data && x->dev == st->st_dev && x->ino == st->st_ino && x->size == st->st_size &&
        x->mtime.tv_sec == st->st_mtim.tv_sec && x->mtime.tv_nsec == st->st_mtim.tv_nsec && x->enc == enc) {
      x->used = ++z->tick;
      return &x->data;
    }
    if (x->used < victim->used) victim = x;
  }
  /* Compress it now (files are small: bounded by ZCACHE_MAX_FILE). */
  size_t len = (size_t)st->st_size;
  char *raw = malloc(len ? len : 1);
  if (!raw) return NULL;
  if (pread(r->fd, raw, len, 0) != (ssize_t)len) {
    free(raw);
    return NULL;
  }
  tusk_buf_t out;
  tusk_buf_init(&out);
  int rc = tusk_compress_buffer((tusk_enc_t)enc, -1, raw, len, &out);
  free(raw);
  if (rc != 0) {
    tusk_buf_dispose(&out);
    return NULL;
  }
  while (z->bytes + out.len > ZCACHE_MAX_BYTES) { /* make room: drop the least recently used */
    zentry_t *lru = NULL;
    for (int i = 0; i < ZCACHE_SLOTS; i++) {
      if (z->e[i].data.data && (!lru || z->e[i].used < lru->used)) lru = &z->e[i];
    }
    if (!lru) break;
    z->bytes -= lru->data.len;
    tusk_buf_dispose(&lru->data);
    lru->used = 0;
  }
  if (victim->data.data) z->bytes -= victim->data.len;
  tusk_buf_dispose(&victim->data);
  victim->dev = st->st_dev;
  victim->ino = st->st_ino;
  victim->size = st->st_size;
  victim->mtime = st->st_mtim;
  victim->enc = enc;
  victim->used = ++z->tick;
  victim->data = out;
  z->bytes += out.len;
  return &victim->data;
}

void tusk_http_zcache_destroy(tusk_http_ctx_t *ctx) {
  if (!ctx->zcache) return;
  for (int i = 0; i < ZCACHE_SLOTS; i++) tusk_buf_dispose(&ctx->zcache->e[i].data);
  free(ctx->zcache);
  ctx->zcache = NULL;
}

/* The Cache-Control value for a path: the first --cache-rule whose pattern
 * matches, else --static-cache-control. Copied into out. */
static const char *cache_control_for(const tusk_conf_t *conf, const char *path, char *out, size_t cap) {
  for (const char *p = conf->cache_rules; p && *p;) {
    size_t n = strcspn(p, "\n");
    const char *eq = memchr(p, '=', n);
    if (eq && (size_t)(eq - p) < 1024) {
      char pat[1024];
      memcpy(pat, p, (size_t)(eq - p));
      pat[eq - p] = '\0';
      if (fnmatch(pat, path, 0) == 0) {
        snprintf(out, cap, "%.*s", (int)(n - (size_t)(eq - p) - 1), eq + 1);
        return out;
      }
    }
    p += n;
    if (*p) p++;
  }
  return conf->static_cache_control;
}

void tusk_http_static_plan(tusk_http_ctx_t *ctx, const tusk_http_req_t *rq, tusk_route_t *r, int is_head,
                           tusk_static_plan_t *plan) {
  const tusk_conf_t *conf = ctx->conf;
  memset(plan, 0, sizeof *plan);
  tusk_buf_init(&plan->head);
  plan->fd = -1;
  int is_get = rq->method_len == 3 && !memcmp(rq->method, "GET", 3);
  if (!is_get && !is_head) {
    close(r->fd);
    tusk_buf_append_str(&plan->head, "Allow: GET, HEAD, OPTIONS\r\n");
    plan->status = rq->method_len == 7 && !memcmp(rq->method, "OPTIONS", 7) ? 204 : 405;
    return;
  }
  tusk_static_req_t q;
  memset(&q, 0, sizeof q);
  q.if_none_match = tusk_http_req_header(rq, "If-None-Match", &q.if_none_match_len);
  q.if_modified_since = tusk_http_req_header(rq, "If-Modified-Since", &q.if_modified_since_len);
  q.range = tusk_http_req_header(rq, "Range", &q.range_len);
  q.if_range = tusk_http_req_header(rq, "If-Range", &q.if_range_len);
  /* The URL path, for --cache-rule patterns. */
  char ccbuf[1024];
  const char *rel = r->file + ctx->docroot.path_len;
  const char *cc = cache_control_for(conf, rel[0] ? rel : "/", ccbuf, sizeof ccbuf);

  /* Encoded variants: never for Range requests (the range would be of the
   * encoded bytes, which clients do not expect). */
  const char *mt = tusk_mime_type(r->file);
  int compressible = tusk_compress_type_ok(mt, strlen(mt));
  size_t al = 0;
  const char *accept = compressible ? tusk_http_req_header(rq, "Accept-Encoding", &al) : NULL;
  int enc = TUSK_ENC_NONE;
  const tusk_buf_t *mem = NULL;
  struct stat vst;
  if (accept && !q.range) {
    /* Precompressed siblings first, whatever --compress says. */
    unsigned have = 0;
    static const int order[] = {TUSK_ENC_BR, TUSK_ENC_ZSTD, TUSK_ENC_GZIP};
    char vpath[PATH_MAX + 8];
    for (int i = 0; i < 3; i++) {
      snprintf(vpath, sizeof vpath, "%s%s", rel + (rel[0] == '/'), tusk_compress_suffix(order[i]));
      if (fstatat(ctx->docroot.fd, vpath, &vst, 0) == 0 && S_ISREG(vst.st_mode) &&
          (vst.st_mtim.tv_sec > r->st.st_mtim.tv_sec ||
           (vst.st_mtim.tv_sec == r->st.st_mtim.tv_sec && vst.st_mtim.tv_nsec >= r->st.st_mtim.tv_nsec))) {
        have |= (unsigned)order[i];
      }
    }
    if (have) {
      enc = tusk_compress_negotiate(accept, al, have);
      if (enc != TUSK_ENC_NONE) {
        snprintf(vpath, sizeof vpath, "%s%s", rel + (rel[0] == '/'), tusk_compress_suffix(enc));
        int vfd = openat(ctx->docroot.fd, vpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (vfd >= 0 && fstat(vfd, &vst) == 0) {
          close(r->fd);
          r->fd = vfd;
        } else {
          if (vfd >= 0) close(vfd);
          enc = TUSK_ENC_NONE;
        }
      }
    }
    if (enc == TUSK_ENC_NONE && conf->compress_mask && (size_t)r->st.st_size >= conf->compress_min &&
        r->st.st_size <= ZCACHE_MAX_FILE) {
      enc = tusk_compress_negotiate(accept, al, conf->compress_mask);
      if (enc != TUSK_ENC_NONE) {
        mem = zcache_get(ctx, r, enc);
        if (!mem) enc = TUSK_ENC_NONE;
      }
    }
  }
  char suffix[8];
  struct stat st = r->st;
  if (enc != TUSK_ENC_NONE) {
    snprintf(suffix, sizeof suffix, "-%s", tusk_compress_name(enc));
    q.etag_suffix = suffix;
    if (!mem) st.st_size = vst.st_size; /* the precompressed file's length */
    else st.st_size = (off_t)mem->len;
  }
  off_t off;
  size_t len;
  plan->status = tusk_static_prepare(&st, r->file, &q, cc, &plan->head, &off, &len);
  /* The body of a compressible file depends on Accept-Encoding (a variant
   * or the cache), so caches must key on it even for an identity answer. */
  if (compressible) tusk_buf_append_str(&plan->head, "Vary: Accept-Encoding\r\n");
  if (enc != TUSK_ENC_NONE) tusk_buf_printf(&plan->head, "Content-Encoding: %s\r\n", tusk_compress_name(enc));
  plan->len = len; /* for HEAD too: it is the Content-Length */
  if (is_head || len == 0) {
    close(r->fd);
    return;
  }
  plan->off = off;
  if (mem) {
    close(r->fd);
    plan->mem = mem->data + off;
  } else {
    plan->fd = r->fd;
  }
}

/* ---- compression of PHP responses ------------------------------------------------ */

int tusk_http_pick_encoding(tusk_http_ctx_t *ctx, const char *accept, size_t al, int status, const char *lines,
                            size_t ll, long long known_len) {
  const tusk_conf_t *conf = ctx->conf;
  if (!conf->compress_mask || status < 200 || status == 204 || status == 206 || status == 304) return TUSK_ENC_NONE;
  if (known_len >= 0 && (size_t)known_len < conf->compress_min) return TUSK_ENC_NONE;
  if (!accept) return TUSK_ENC_NONE;
  int type_ok = 0;
  const char *p = lines, *end = lines + ll;
  while (p < end) {
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    if (!eol) eol = end;
    size_t n = (size_t)(eol - p);
    if (n >= 17 && !strncasecmp(p, "Content-Encoding:", 17)) return TUSK_ENC_NONE;
    if (n >= 14 && !strncasecmp(p, "Content-Range:", 14)) return TUSK_ENC_NONE;
    if (n >= 14 && !strncasecmp(p, "Cache-Control:", 14) && memmem(p, n, "no-transform", 12)) return TUSK_ENC_NONE;
    if (n >= 13 && !strncasecmp(p, "Content-Type:", 13)) {
      const char *v = p + 13;
      while (v < eol && *v == ' ') v++;
      type_ok = tusk_compress_type_ok(v, (size_t)(eol - v));
    }
    p = eol + 2;
  }
  if (!type_ok) return TUSK_ENC_NONE;
  return tusk_compress_negotiate_live(accept, al, conf->compress_mask);
}
