/* HTTP/1.x request parser: pure, no I/O, no allocation.
 *
 * The head parser is called on the bytes received so far (from the start of
 * the request) each time more arrive; it returns TUSK_AGAIN until the whole
 * head (request line + headers + empty line) is present, then the number of
 * bytes the head occupies. Parsed strings point into the caller's buffer,
 * which must stay unchanged while they are used.
 *
 * It is strict where leniency enables request smuggling (RFC 9112): it
 * rejects obs-fold, bare CR, NUL and other control bytes in the head,
 * whitespace between a field name and its colon, invalid token characters
 * in methods and field names, conflicting or malformed Content-Length,
 * Content-Length together with Transfer-Encoding, and any
 * Transfer-Encoding other than a final "chunked". A bare LF line ending is
 * rejected as well. Empty lines before the request line (RFC 9112 2.2) are
 * skipped.
 *
 * The chunked decoder is incremental and decodes into a tusk_buf_t. */
#ifndef TUSK_HTTP_H1_PARSER_H
#define TUSK_HTTP_H1_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Parse failures. tusk_h1_error_status() maps each to the HTTP status the
 * server answers with; tusk_h1_error_str() to a short reason for the log. */
typedef enum {
  TUSK_H1_OK = 0,
  TUSK_H1_E_BAD_REQUEST = -1,       /* 400: malformed syntax */
  TUSK_H1_E_URI_TOO_LONG = -2,      /* 414: request target over max_uri */
  TUSK_H1_E_HEADERS_TOO_LARGE = -3, /* 431: head over max_head or too many fields */
  TUSK_H1_E_NOT_IMPLEMENTED = -4,   /* 501: unknown transfer coding */
  TUSK_H1_E_VERSION = -5,           /* 505: HTTP version not 1.0/1.1 */
  TUSK_H1_E_SMUGGLING = -6,         /* 400: CL+TE, conflicting CL, obs-fold ... */
  TUSK_H1_E_BODY_TOO_LARGE = -7,    /* 413: body over the caller's limit */
} tusk_h1_error_t;

int tusk_h1_error_status(int err);
const char *tusk_h1_error_str(int err);

typedef struct tusk_h1_header_s {
  const char *name; /* as sent (case preserved) */
  size_t name_len;
  const char *value; /* leading/trailing OWS stripped */
  size_t value_len;
} tusk_h1_header_t;

typedef struct tusk_h1_limits_s {
  size_t max_head;    /* bytes of request line + headers + CRLFCRLF */
  size_t max_uri;     /* bytes of the request target */
  size_t max_headers; /* number of header fields; must be <= the array given */
} tusk_h1_limits_t;

typedef struct tusk_h1_request_s {
  const char *method;
  size_t method_len;
  const char *target; /* request-target as sent: origin-form, absolute-form, '*' */
  size_t target_len;
  int version_minor; /* 0 or 1 (HTTP/1.0 or HTTP/1.1) */
  tusk_h1_header_t *headers; /* caller's array */
  size_t num_headers;
  /* Derived from the headers: */
  int64_t content_length; /* -1 when absent */
  int chunked;            /* Transfer-Encoding: chunked */
  int keep_alive;         /* per version + Connection header */
  int expect_continue;    /* Expect: 100-continue */
  int upgrade;            /* Connection: upgrade with an Upgrade header */
  const char *host;       /* Host header value, NULL when absent */
  size_t host_len;
} tusk_h1_request_t;

/* Parses a request head from buf[0..len).
 * req->headers must point to an array of at least lim->max_headers entries.
 * Returns the length of the head (> 0) when complete, TUSK_AGAIN when more
 * bytes are needed (and the limits are not yet crossed), or a negative
 * tusk_h1_error_t. Never reads past len. HTTP/1.1 without Host is 400. */
int tusk_h1_parse_request(const char *buf, size_t len, tusk_h1_request_t *req,
                          const tusk_h1_limits_t *lim);

/* Case-insensitive lookup of a header; returns NULL when absent. */
const tusk_h1_header_t *tusk_h1_find_header(const tusk_h1_request_t *req, const char *name);

/* Incremental chunked-body decoder. Trailers are parsed and discarded
 * (bounded by max_trailer bytes). */
typedef struct tusk_h1_chunked_s {
  int state;
  uint64_t remaining; /* bytes left in the current chunk */
  size_t line_len;    /* bytes of the current size/trailer line seen */
  size_t trailer_len;
  size_t max_trailer;
} tusk_h1_chunked_t;

void tusk_h1_chunked_init(tusk_h1_chunked_t *d, size_t max_trailer);

/* Feeds in[0..len). Decoded data is appended to out. *consumed is set to the
 * number of input bytes used. Returns 0 when the final chunk and trailers are
 * complete (bytes after *consumed belong to the next request), TUSK_AGAIN
 * when more input is needed, TUSK_H1_E_BAD_REQUEST on a malformed size line
 * (non-hex, overflow beyond 2^60, bare LF, missing CRLF after data, chunk
 * extensions are allowed and ignored), TUSK_H1_E_HEADERS_TOO_LARGE when
 * trailers exceed max_trailer, TUSK_ENOMEM when out cannot grow.
 * The caller enforces the body size limit by checking out->len. */
int tusk_h1_chunked_feed(tusk_h1_chunked_t *d, const char *in, size_t len, size_t *consumed,
                         tusk_buf_t *out);

/* A whole request, head and body, from buf[0..len) (for servers that hand
 * over complete messages, e.g. `tusk run`'s http:// services). The head is
 * parsed into req as by tusk_h1_parse_request() (*head_len: its length);
 * the body, by Content-Length or decoded from chunked (trailers dropped,
 * at most 8 KiB of them), is appended to body. A body over max_body is
 * TUSK_H1_E_BODY_TOO_LARGE as soon as that is known (a declared length,
 * or the decoded bytes so far).
 * Returns the bytes the whole request occupies (> 0); TUSK_AGAIN when more
 * are needed (body may then hold a partial body: reset it before calling
 * again; req->expect_continue tells whether the client waits for a 100
 * Continue, once *head_len > 0); or a negative tusk_h1_error_t. Never reads
 * past len. */
int tusk_h1_read_message(const char *buf, size_t len, tusk_h1_request_t *req, const tusk_h1_limits_t *lim,
                         size_t max_body, tusk_buf_t *body, size_t *head_len);

#endif
