/* Protocol-neutral request handling: what HTTP/1.1 connections and HTTP/2
 * streams share once a request head (and body) is complete.
 *
 * A protocol describes its request in a tusk_http_req_t (pointers into its
 * own storage, valid for the call) and asks tusk_http_decide() what to do:
 * answer with a status (errors, OPTIONS *, redirects), serve a static file
 * (the route holds an open descriptor the caller now owns), or run PHP (the
 * REQ frame is built into the job, ready for ctx->php_submit()). */
#ifndef TUSK_HTTP_REQUEST_H
#define TUSK_HTTP_REQUEST_H

#include <stddef.h>

#include "core/buf.h"
#include "http/h1_parser.h"
#include "http/job.h"
#include "http/static.h"

struct tusk_http_ctx_s;

typedef struct tusk_http_req_s {
  const char *method;
  size_t method_len;
  const char *target; /* origin-form, absolute-form or "*" */
  size_t target_len;
  const char *host; /* Host header or :authority, may be NULL */
  size_t host_len;
  const tusk_h1_header_t *headers;
  size_t num_headers;
  const char *protocol; /* "HTTP/1.1", "HTTP/1.0", "HTTP/2.0" */
  const char *body;
  size_t body_len;
  int has_body; /* a Content-Length or chunked body was announced */
  const char *remote_addr;
  int remote_port;
  const char *local_addr;
  int local_port;
  const char *tls_version; /* NULL on plain connections */
  const char *tls_cipher;
  const char *tls_sni;
} tusk_http_req_t;

typedef enum {
  TUSK_ACT_RESPOND = 0, /* answer `status` with `headers` and a standard body */
  TUSK_ACT_STATIC,      /* serve route.file (route.fd is open) */
  TUSK_ACT_PHP,         /* submit the job */
} tusk_http_act_t;

typedef struct tusk_http_decision_s {
  tusk_http_act_t act;
  int status;
  int close;         /* RESPOND: a malformed request, close after answering */
  const char *why;   /* RESPOND with close: for the log line */
  tusk_buf_t headers; /* RESPOND: extra header lines, "Name: value\r\n" */
  tusk_route_t route; /* STATIC */
} tusk_http_decision_t;

/* Decides what to do with rq. d->headers must be disposed by the caller
 * (tusk_buf_dispose). For PHP, job->frame, job->seq and job->what are set.
 * May be called from any loop callback. */
void tusk_http_decide(struct tusk_http_ctx_s *ctx, const tusk_http_req_t *rq, tusk_http_decision_t *d,
                      tusk_http_job_t *job);

/* Frees the context's compressed-file cache. */
void tusk_http_zcache_destroy(struct tusk_http_ctx_s *ctx);

/* The value of header `name` (case-insensitive), or NULL. */
const char *tusk_http_req_header(const tusk_http_req_t *rq, const char *name, size_t *len);


/* ---- static files, for both protocols ---- */

/* What to send for a static route: a status, header lines (without
 * Content-Length) and a body that is either a byte range of fd or bytes in
 * memory (a compressed copy, owned by the context's cache: valid until the
 * next call on this loop, so copy or send at once). */
typedef struct tusk_static_plan_s {
  int status;
  tusk_buf_t head;
  int fd; /* the caller closes it; -1 when the body is in mem or empty */
  off_t off;
  size_t len;
  const char *mem;
} tusk_static_plan_t;

/* Plans the response for rq routed to r (takes r->fd): methods (405/204
 * for non-GET/HEAD), conditional and Range requests, precompressed
 * siblings (file.br, file.zst, file.gz, when present and not older),
 * compression of compressible files into a small cache, Cache-Control
 * from --cache-rule / --static-cache-control. plan->head must be disposed. */
void tusk_http_static_plan(struct tusk_http_ctx_s *ctx, const tusk_http_req_t *rq, tusk_route_t *r, int is_head,
                           tusk_static_plan_t *plan);

/* ---- compression of PHP responses ---- */

/* The encoding for a response with these header lines ("Name: value\r\n")
 * to a request whose Accept-Encoding value is accept[0..al) (NULL when
 * absent), or TUSK_ENC_NONE: compression on, the client accepts one, a compressible
 * Content-Type, no Content-Encoding or Content-Range from the app, no
 * Cache-Control: no-transform, and known_len (-1: streamed) at least
 * --compress-min-size. */
int tusk_http_pick_encoding(struct tusk_http_ctx_s *ctx, const char *accept, size_t al, int status,
                            const char *lines, size_t ll, long long known_len);

#endif
