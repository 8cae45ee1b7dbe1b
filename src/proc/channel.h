/* The channel between the master (HTTP event loop) and one PHP worker:
 * length-prefixed frames over two SOCK_STREAM socketpairs, one per
 * direction. One socket would do, but its wait queue serves both
 * directions: the master reading a response (freeing the worker's send
 * buffer) would wake the worker blocked in read() for its next REQ, once
 * per request, for nothing.
 *
 *   master -> worker: REQ (a complete request), ABORT (client went away);
 *                     closing the channel tells the worker to exit
 *   worker -> master: HEAD (status + header block), BODY (response bytes),
 *                     END (response complete), IDLE (ready for the next REQ),
 *                     INFO (a 1xx head, e.g. 103 Early Hints, before HEAD)
 *
 * A REQ carries every CGI/$_SERVER variable the master computed, then the
 * body. The master decides routing and the variables, so the worker only
 * runs PHP. Frames are at most TUSK_CHAN_MAX_FRAME bytes. */
#ifndef TUSK_PROC_CHANNEL_H
#define TUSK_PROC_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum {
  TUSK_CHAN_REQ = 1,
  TUSK_CHAN_ABORT = 2,
  TUSK_CHAN_HEAD = 10,
  TUSK_CHAN_BODY = 11,
  TUSK_CHAN_END = 12,
  TUSK_CHAN_IDLE = 13,
  TUSK_CHAN_INFO = 14, /* a 1xx informational head (103 Early Hints) */
};

/* Frame flags. */
#define TUSK_CHAN_F_FLUSH 1u   /* BODY: send to the client now (streaming) */

#define TUSK_CHAN_HDR 8u
#define TUSK_CHAN_MAX_FRAME (1u << 30)

typedef struct tusk_chan_frame_s {
  uint32_t len; /* payload bytes */
  uint8_t type;
  uint8_t flags;
  uint16_t seq; /* request sequence number, to drop stale ABORTs */
} tusk_chan_frame_t;

/* Appends a frame header + payload to out. Returns 0 or TUSK_ENOMEM. */
int tusk_chan_put(tusk_buf_t *out, uint8_t type, uint8_t flags, uint16_t seq, const void *payload,
                  size_t len);

/* Looks for a whole frame at the start of in[0..len). Returns the total
 * frame size (header + payload) and fills *f and *payload, TUSK_AGAIN when
 * incomplete, TUSK_EPROTO when the length is over the maximum. */
int tusk_chan_get(const char *in, size_t len, tusk_chan_frame_t *f, const char **payload);

/* A HEAD or INFO payload: u16 status, u16 reason length, reason, then
 * "Name: value\r\n" lines. */
typedef struct tusk_chan_head_s {
  int status;         /* 200 when the payload is short or says 0 */
  const char *reason; /* may be empty (then use the standard phrase) */
  size_t reason_len;
  const char *lines;  /* "" when absent */
  size_t lines_len;
} tusk_chan_head_t;

/* Splits a HEAD/INFO payload; a malformed one reads as 200 with no lines.
 * The pointers are into payload. Pure. */
void tusk_chan_head_parse(const char *payload, size_t len, tusk_chan_head_t *h);

/* REQ payload: [u32 nvars] ([u16 klen][u32 vlen] key NUL value NUL)* [u32 bodylen] body.
 * Keys and values are NUL-terminated so the worker can hand them to PHP as
 * C strings without copying. Keys starting with '\x01' carry a raw request
 * header (name as sent) for getallheaders(); the others are $_SERVER. */
typedef struct tusk_chan_req_builder_s {
  tusk_buf_t *out;
  size_t start;    /* offset of the frame header in out */
  size_t nvars_at; /* offset of the variable count */
  uint32_t nvars;
} tusk_chan_req_builder_t;

int tusk_chan_req_begin(tusk_chan_req_builder_t *b, tusk_buf_t *out, uint16_t seq);
int tusk_chan_req_var(tusk_chan_req_builder_t *b, const char *k, size_t kl, const char *v, size_t vl);
int tusk_chan_req_var_str(tusk_chan_req_builder_t *b, const char *k, const char *v);
int tusk_chan_req_end(tusk_chan_req_builder_t *b, const char *body, size_t bodylen);

/* Walking a REQ payload on the worker side. */
typedef struct tusk_chan_var_s {
  const char *key;
  uint16_t klen;
  const char *val;
  uint32_t vlen;
} tusk_chan_var_t;

/* Splits a REQ payload into its variables (pointers into payload) and body.
 * vars must hold max entries. Returns the number of vars or TUSK_EPROTO. */
int tusk_chan_req_parse(const char *payload, size_t len, tusk_chan_var_t *vars, size_t max,
                        const char **body, size_t *bodylen);

/* Like tusk_chan_req_parse(), into *vars grown (realloc) to hold every
 * variable of the frame: a request's header count is bounded by
 * --max-headers, not by a fixed array here. *vars and *cap start as
 * NULL/0 and stay owned by the caller. Returns the number of vars,
 * TUSK_EPROTO or TUSK_ENOMEM. */
int tusk_chan_req_parse_all(const char *payload, size_t len, tusk_chan_var_t **vars, size_t *cap,
                            const char **body, size_t *bodylen);

#endif
