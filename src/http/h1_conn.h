/* HTTP/1.1 connections on the master's libuv loop.
 *
 * A connection reads and parses requests, buffers each body completely
 * (so a slow upload never holds a PHP worker), then either serves a static
 * file from C or hands the request to the worker pool. Responses from PHP
 * arrive through the tusk_h1_php_* calls below and are written without
 * waiting for the client (so a slow reader never holds a worker either).
 * Requests on one connection are handled one at a time, in order
 * (pipelined requests wait in the input buffer). */
#ifndef TUSK_HTTP_H1_CONN_H
#define TUSK_HTTP_H1_CONN_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "conf/conf.h"
#include "core/buf.h"
#include "http/h1_parser.h"
#include "http/job.h"
#include "http/static.h"

struct tusk_worker_s;

typedef struct tusk_h1_conn_s tusk_h1_conn_t;

/* State shared by every connection of one event loop. */
typedef struct tusk_http_ctx_s {
  uv_loop_t *loop;
  const tusk_conf_t *conf;
  tusk_docroot_t docroot;
  tusk_route_cache_t *route_cache;
  struct tusk_zcache_s *zcache; /* compressed static files (http/request.c) */
  struct tusk_tls_ctx_s *tls;   /* certificates, when a TLS listener exists */
  uv_tcp_t *tls_listener;       /* connections accepted here speak TLS */
  int tls_port;                 /* for --tls-redirect */
  tusk_h1_limits_t limits;
  FILE *access_log;
  int draining;
  size_t nconns;
  tusk_h1_conn_t *conns; /* every open connection (doubly linked) */
  void (*on_drained)(struct tusk_http_ctx_s *ctx); /* last connection closed while draining */
  /* Where PHP requests go: the master's worker pool (pooled mode) or this
   * process's own PHP (direct mode). submit() queues c's request
   * (c->reqframe, a complete REQ frame) and returns 0, or TUSK_ELIMIT when
   * the queue is full (503). cancel() is called when c goes away while
   * queued or running (see http/job.h). */
  /* Direct mode: connections are counted across all workers for
   * --max-connections (own_conns is this worker's shared counter). */
  volatile int *own_conns;
  size_t (*count_conns)(struct tusk_http_ctx_s *ctx);
  int (*php_submit)(tusk_http_job_t *j);
  void (*php_cancel)(tusk_http_job_t *j);
} tusk_http_ctx_t;

/* Fills ctx from conf for a loop: limits, document root (opened here),
 * access log. Returns 0, or -1 with a sentence in err. */
int tusk_http_ctx_init(tusk_http_ctx_t *ctx, uv_loop_t *loop, const tusk_conf_t *conf, char *err, size_t errlen);
void tusk_http_ctx_dispose(tusk_http_ctx_t *ctx);

struct tusk_h1_conn_s {
  uv_tcp_t tcp;
  uv_timer_t timer;
  tusk_http_ctx_t *ctx;
  tusk_h1_conn_t *prev, *next;
  int handles_open;
  int state;
  int closing;
  tusk_buf_t in;
  /* The current request. */
  tusk_h1_request_t req;
  tusk_h1_header_t *headers;
  size_t head_len;
  tusk_buf_t body;
  uint64_t body_need;
  tusk_h1_chunked_t chunked;
  int sent_continue;
  int keep_alive;
  int is_head;
  uint64_t started_ms;
  int status;      /* for the access log */
  uint64_t sent;   /* body bytes, for the access log */
  /* PHP hand-off (owned by the pool while queued or running). */
  tusk_http_job_t job;
  tusk_buf_t php_head; /* HEAD frame payload until the response starts */
  tusk_buf_t php_body; /* buffered BODY bytes */
  struct tusk_encoder_s *enc; /* compressing a streamed PHP response */
  int enc_kind;               /* tusk_enc_t of the response, 0: none */
  int streaming;
  int sse;          /* PHP's response is text/event-stream: keep-alive comments while it is quiet */
  char sse_tail[2]; /* its last two bytes streamed: a comment goes only between events */
  long long stream_left; /* streaming with PHP's Content-Length: bytes still due; -1: chunked */
  /* Static file body still to send. */
  int file_fd;
  off_t file_off;
  size_t file_left;
  int writes_pending;
  int close_after_write;
  int read_stopped;
  uint64_t served; /* responses completed on this connection */
  uint64_t active_ms; /* when bytes last came in */
  /* HTTP/2 (after ALPN h2, h2c prior knowledge or Upgrade), or NULL. */
  struct tusk_h2_s *h2;
  /* TLS, or NULL on plain connections. */
  struct tusk_tls_conn_s *tls;
  int tls_ready;
  tusk_buf_t raw; /* TLS: ciphertext read */
  char remote_addr[64];
  int remote_port;
  char local_addr[64];
  int local_port;
};

/* Called by the listener for each accepted connection (already
 * initialised with uv_tcp_init on ctx->loop and accepted). Takes
 * ownership. */
void tusk_h1_conn_start(tusk_http_ctx_t *ctx, tusk_h1_conn_t *c, int tls);
tusk_h1_conn_t *tusk_h1_conn_alloc(tusk_http_ctx_t *ctx);
void tusk_h1_conn_free_unstarted(tusk_h1_conn_t *c);

/* For protocol modules (http/h2_conn.c) running on a connection. */
/* Writes b (taking its storage), encrypted when the connection is TLS. */
void tusk__conn_write(tusk_h1_conn_t *c, tusk_buf_t *b);
/* Logs a 503 for a full queue, at most once a second (with a count). */
void tusk__http_warn_queue_full(tusk_http_ctx_t *ctx, const char *what);
/* 1 when a HEAD frame payload (proc/channel.h) has Content-Type
 * text/event-stream. */
int tusk__head_is_event_stream(const char *payload, size_t len);
/* Makes the connection's timer fire within ms (HTTP/2: SSE keep-alives). */
void tusk__conn_timer_within(tusk_h1_conn_t *c, uint64_t ms);
/* Closes the connection once everything written so far is sent. */
void tusk__conn_close_after_writes(tusk_h1_conn_t *c);
/* TLS facts for $_SERVER (all NULL on plain connections). */
void tusk__conn_tls_info(tusk_h1_conn_t *c, const char **version, const char **cipher, const char **sni);

/* Starts draining: idle connections close now, busy ones after their
 * current response. */
void tusk_http_drain(tusk_http_ctx_t *ctx);


#endif
