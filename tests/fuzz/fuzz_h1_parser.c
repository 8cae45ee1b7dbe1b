/* libFuzzer target for src/http/h1_parser.c.
 *
 * Parses the input as a request head with small limits and checks what the
 * parser promises: the head length is within the input, parsed strings
 * point into it, every proper prefix of an accepted head is TUSK_AGAIN,
 * and the result does not depend on what follows the head. When the head
 * is chunked (or does not parse at all, for extra decoder coverage), the
 * rest is decoded in one call and again in pieces whose sizes come from the
 * input; both must agree, and the output can never be longer than the
 * input. */
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

static int inside(const char *p, size_t n, const char *buf, size_t len) {
  return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static int is_known(int rc) {
  return rc > 0 || rc == TUSK_AGAIN || rc == TUSK_H1_E_BAD_REQUEST ||
         rc == TUSK_H1_E_URI_TOO_LONG || rc == TUSK_H1_E_HEADERS_TOO_LARGE ||
         rc == TUSK_H1_E_NOT_IMPLEMENTED || rc == TUSK_H1_E_VERSION ||
         rc == TUSK_H1_E_SMUGGLING;
}

/* Parses a heap copy of exactly len bytes so that ASan sees any overread. */
static int parse_copy(const uint8_t *data, size_t len, tusk_h1_request_t *req,
                      tusk_h1_header_t *fields, char **copy) {
  *copy = malloc(len ? len : 1);
  if (len) memcpy(*copy, data, len);
  memset(req, 0, sizeof *req);
  req->headers = fields;
  return tusk_h1_parse_request(*copy, len, req, &limits);
}

static void check_request(const tusk_h1_request_t *req, const char *buf, size_t head) {
  ASSERT(inside(req->method, req->method_len, buf, head) && req->method_len > 0);
  ASSERT(inside(req->target, req->target_len, buf, head) && req->target_len > 0);
  ASSERT(req->target_len <= limits.max_uri);
  ASSERT(req->version_minor == 0 || req->version_minor == 1);
  ASSERT(req->num_headers <= limits.max_headers);
  for (size_t i = 0; i < req->num_headers; i++) {
    const tusk_h1_header_t *h = &req->headers[i];
    ASSERT(inside(h->name, h->name_len, buf, head) && h->name_len > 0);
    ASSERT(inside(h->value, h->value_len, buf, head));
    ASSERT(memchr(h->value, '\r', h->value_len) == NULL);
    ASSERT(memchr(h->value, '\n', h->value_len) == NULL);
    ASSERT(tusk_h1_find_header(req, "x-not-there") == NULL);
  }
  ASSERT(req->host == NULL || inside(req->host, req->host_len, buf, head));
  ASSERT(req->version_minor == 0 || req->host != NULL);
  ASSERT(!(req->chunked && req->content_length >= 0));
  ASSERT(req->content_length >= -1);
  ASSERT(!req->chunked || req->version_minor == 1);
}

/* A tiny PRNG seeded from the input, for piece sizes. */
static uint32_t next_rand(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static void fuzz_chunked(const uint8_t *data, size_t len, uint32_t seed) {
  tusk_buf_t one, pieces;
  tusk_buf_init(&one);
  tusk_buf_init(&pieces);
  size_t max_trailer = 64;

  tusk_h1_chunked_t d;
  tusk_h1_chunked_init(&d, max_trailer);
  size_t used1 = 0;
  int rc1 = tusk_h1_chunked_feed(&d, (const char *)data, len, &used1, &one);
  ASSERT(rc1 == 0 || rc1 == TUSK_AGAIN || rc1 == TUSK_H1_E_BAD_REQUEST ||
         rc1 == TUSK_H1_E_HEADERS_TOO_LARGE);
  ASSERT(used1 <= len);
  ASSERT(one.len <= used1);
  if (rc1 == TUSK_AGAIN) ASSERT(used1 == len);

  tusk_h1_chunked_init(&d, max_trailer);
  size_t off = 0;
  int rc2 = TUSK_AGAIN;
  uint32_t s = seed | 1;
  while (off < len) {
    size_t n = 1 + next_rand(&s) % 17;
    if (n > len - off) n = len - off;
    /* Each piece is its own allocation, so reads past it are caught. */
    char *piece = malloc(n);
    memcpy(piece, data + off, n);
    size_t used = 0;
    rc2 = tusk_h1_chunked_feed(&d, piece, n, &used, &pieces);
    free(piece);
    ASSERT(used <= n);
    off += used;
    if (rc2 != TUSK_AGAIN) break;
    ASSERT(used == n);
  }
  ASSERT(rc2 == rc1);
  ASSERT(off == used1);
  ASSERT(pieces.len == one.len);
  ASSERT(one.len == 0 || memcmp(one.data, pieces.data, one.len) == 0);

  /* After the end or an error, the decoder consumes nothing and repeats
   * its answer. */
  if (rc2 != TUSK_AGAIN) {
    size_t used = 1;
    ASSERT(tusk_h1_chunked_feed(&d, "0\r\n\r\n", 5, &used, &pieces) == rc2);
    ASSERT(used == 0 && pieces.len == one.len);
  }
  if (rc1 < 0 && rc1 != TUSK_AGAIN) {
    ASSERT(tusk_h1_error_status(rc1) == 400 || tusk_h1_error_status(rc1) == 431);
  }

  tusk_buf_dispose(&one);
  tusk_buf_dispose(&pieces);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tusk_h1_header_t fields[MAX_FIELDS];
  tusk_h1_request_t req;
  char *buf;
  int rc = parse_copy(data, size, &req, fields, &buf);
  ASSERT(is_known(rc));
  if (rc < 0 && rc != TUSK_AGAIN) {
    int status = tusk_h1_error_status(rc);
    ASSERT(status == 400 || status == 414 || status == 431 || status == 501 || status == 505);
    ASSERT(strlen(tusk_h1_error_str(rc)) > 0);
  }

  uint32_t seed = 2166136261u;
  for (size_t i = 0; i < size && i < 64; i++) seed = (seed ^ data[i]) * 16777619u;

  if (rc > 0) {
    size_t head = (size_t)rc;
    ASSERT(head <= size && head <= limits.max_head);
    check_request(&req, buf, head);
    int chunked = req.chunked;
    free(buf);

    /* The head alone parses to the same length. */
    tusk_h1_header_t f2[MAX_FIELDS];
    tusk_h1_request_t r2;
    ASSERT(parse_copy(data, head, &r2, f2, &buf) == rc);
    free(buf);

    /* Every proper prefix waits for more (all of them for short heads). */
    size_t step = head <= 256 ? 1 : head / 61 + 1;
    for (size_t i = 0; i < head; i += step) {
      ASSERT(parse_copy(data, i, &r2, f2, &buf) == TUSK_AGAIN);
      free(buf);
    }
    ASSERT(parse_copy(data, head - 1, &r2, f2, &buf) == TUSK_AGAIN);
    free(buf);

    if (chunked) fuzz_chunked(data + head, size - head, seed);
  } else {
    free(buf);
    if (rc != TUSK_AGAIN) fuzz_chunked(data, size, seed);
  }
  return 0;
}
