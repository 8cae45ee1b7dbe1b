/* A PHP request in flight, as the worker pool sees it.
 *
 * A protocol (an HTTP/1.1 connection, an HTTP/2 stream) embeds one job per
 * request it hands to PHP and fills `ops` with its own response callbacks.
 * The pool (proc/master.c in pooled mode, proc/direct.c in direct mode)
 * only ever touches the fields below, so it is blind to the protocol, and
 * one HTTP/2 connection can have several jobs running on several workers.
 *
 * Ownership: while `queued` or `worker` is set the job belongs to the pool;
 * a protocol that goes away first calls ctx->php_cancel(job). The callbacks
 * are called on the loop that submitted the job and may write, finish or
 * close; after end() or fail() the pool forgets the job. */
#ifndef TUSK_HTTP_JOB_H
#define TUSK_HTTP_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct tusk_http_job_s tusk_http_job_t;

typedef struct tusk_http_job_ops_s {
  /* PHP's response head (HEAD frame payload: u16 status, u16 reason length,
   * reason, "Name: value\r\n" lines). */
  void (*head)(tusk_http_job_t *j, const char *payload, size_t len);
  /* A 1xx informational head (INFO frame, same layout). */
  void (*info)(tusk_http_job_t *j, const char *payload, size_t len);
  /* Body bytes; flush: PHP called flush(), send what there is now. */
  void (*body)(tusk_http_job_t *j, const char *data, size_t len, int flush);
  /* The response is complete. */
  void (*end)(tusk_http_job_t *j);
  /* The request failed before or while PHP ran: 502, 503 or 504 when
   * nothing was sent yet, otherwise the response is cut. */
  void (*fail)(tusk_http_job_t *j, int status);
  /* 1 when the client is gone (connection_aborted()). May be NULL. */
  int (*aborted)(tusk_http_job_t *j);
  /* Bytes of this response held in memory and not yet written to the
   * client. Above conf->output_buffer the pool stops taking PHP's output
   * (the worker waits) until it falls to half of that. May be NULL. */
  size_t (*pending)(tusk_http_job_t *j);
} tusk_http_job_ops_t;

struct tusk_http_job_s {
  const tusk_http_job_ops_t *ops;
  tusk_buf_t frame;       /* the complete REQ frame */
  char what[128];         /* "GET /path", for logs and the scoreboard */
  void *worker;           /* set by the pool while PHP runs it */
  tusk_http_job_t *qnext, *qprev;
  int queued;
  uint16_t seq;
};

#endif
