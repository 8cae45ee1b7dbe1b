/* libFuzzer target for tusk_h1_read_message() (src/http/h1_parser.c): whole
 * requests, head and body, one after another from one buffer, as
 * `tusk run`'s http:// services read them.
 *
 * The first input byte picks the body limit (0..255 x 64 bytes); the rest is
 * the byte stream. Checks: a complete request lies within the input, its
 * head within it, a Content-Length body is exactly the bytes after the
 * head, no body is over the limit, and the result for the first request
 * does not change when the stream is cut just after it (what follows
 * cannot change how a complete request was read). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"
#include "http/h1_parser.h"

#define MAX_FIELDS 16

#define ASSERT(cond)                                                            \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                  \
    }                                                                           \
  } while (0)

static const tusk_h1_limits_t limits = {1024, 256, MAX_FIELDS};

static int read_one(const char *p, size_t n, size_t max_body, tusk_buf_t *body, size_t *head_len,
                    tusk_h1_request_t *req, tusk_h1_header_t *hdrs) {
  memset(req, 0, sizeof *req);
  req->headers = hdrs;
  tusk_buf_reset(body);
  return tusk_h1_read_message(p, n, req, &limits, max_body, body, head_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t max_body = (size_t)data[0] * 64;
  const char *in = (const char *)data + 1;
  size_t len = size - 1;
  tusk_buf_t body, again;
  tusk_buf_init(&body);
  tusk_buf_init(&again);
  tusk_h1_header_t hdrs[MAX_FIELDS], hdrs2[MAX_FIELDS];
  tusk_h1_request_t req, req2;
  size_t off = 0;
  for (int k = 0; off < len && k < 64; k++) {
    size_t head_len = 0;
    int n = read_one(in + off, len - off, max_body, &body, &head_len, &req, hdrs);
    ASSERT(head_len <= len - off);
    if (n == TUSK_AGAIN) {
      ASSERT(body.len <= max_body);
      break;
    }
    if (n < 0) {
      int st = tusk_h1_error_status(n);
      ASSERT(st >= 400 && st <= 505);
      ASSERT(strcmp(tusk_h1_error_str(n), "unknown error") != 0);
      break;
    }
    ASSERT(n > 0 && (size_t)n <= len - off);
    ASSERT(head_len > 0 && head_len <= (size_t)n);
    ASSERT(body.len <= max_body);
    if (!req.chunked)
      ASSERT(body.len == (size_t)n - head_len && (body.len == 0 || !memcmp(body.data, in + off + head_len, body.len)));
    else ASSERT(body.len <= (size_t)n - head_len);
    /* The same request alone reads the same. */
    size_t hl2 = 0;
    int n2 = read_one(in + off, (size_t)n, max_body, &again, &hl2, &req2, hdrs2);
    ASSERT(n2 == n && hl2 == head_len && again.len == body.len);
    ASSERT(body.len == 0 || !memcmp(again.data, body.data, body.len));
    ASSERT(req2.keep_alive == req.keep_alive && req2.chunked == req.chunked);
    off += (size_t)n;
  }
  tusk_buf_dispose(&body);
  tusk_buf_dispose(&again);
  return 0;
}
