/* HTTP/1.x request head parser and chunked decoder (RFC 9112).
 *
 * The head parser first looks for the blank line that ends the head (16
 * bytes at a time with SSE2, else memchr), checking on the way that every
 * LF is preceded by CR. Only a complete head is parsed in full, so a head
 * that arrives in many pieces costs one fast pass per call; an incomplete
 * head gets just enough checks (the request line, the limits) to turn
 * garbage away early. Targets and values are scanned 16 bytes at a time
 * too (8 with plain C), names byte by byte through a class table.
 *
 * Error mapping choices where RFC 9112 leaves room:
 * - Whitespace before a field name's colon, obs-fold, Transfer-Encoding on
 *   HTTP/1.0, Content-Length with Transfer-Encoding and differing
 *   Content-Length values are TUSK_H1_E_SMUGGLING (400): each is a known
 *   request-smuggling vector, and the distinct code makes the log say so.
 * - Transfer-Encoding: RFC 9112 6.3 says a request whose final coding is
 *   not "chunked" is 400, and 6.1 says an unknown coding is 501. We answer
 *   501 whenever the list holds a coding other than "chunked" ("gzip",
 *   "gzip, chunked"), because that is what the client needs to hear, and
 *   400 when "chunked" is not the final coding ("chunked, gzip",
 *   "chunked, chunked"), because then the framing cannot be determined;
 *   400 wins over 501. An empty list element, or one that is not a bare
 *   token (parameters included: no coding we accept has any), is 400.
 * - The request line (without CRLF) may be at most max_uri + 32 bytes, so
 *   a line still arriving is answered 414 as soon as it crosses that,
 *   and a complete line gets the same answer (a very long method with a
 *   target near max_uri). The target itself is bounded by max_uri.
 * - The target accepts bytes 0x80-0xFF (raw UTF-8 sent by some clients) but
 *   no control, space or DEL. Asterisk-form is accepted only for OPTIONS;
 *   CONNECT's target is not checked further (the server does not proxy).
 * - Host must consist of reg-name / IP-literal / port characters; anything
 *   else ("/", "@", "\", space) is 400 so that it is safe to use for
 *   virtual hosting and SERVER_NAME. An empty Host is allowed (RFC 9110
 *   7.2).
 * - Content-Length elements compare by value, so "5, 05" is accepted. */
#include "http/h1_parser.h"

#include <limits.h>
#include <string.h>

#include "core/common.h"

/* Longest request line beyond max_uri: method, two spaces, "HTTP/1.1". */
#define H1_LINE_SLACK 32
/* Longest chunk-size line (size, extensions), without its CRLF. */
#define H1_CHUNK_LINE_MAX 4096
/* 15 hex digits keep a chunk size below 2^60. */
#define H1_CHUNK_SIZE_DIGITS 15
/* 18 decimal digits always fit in int64_t. */
#define H1_CL_DIGITS 18

enum {
  C_TOKEN = 1, /* tchar (RFC 9110 5.6.2) */
  C_URI = 2,   /* request-target byte: 0x21-0x7e, 0x80-0xff */
  C_VALUE = 4, /* field-value byte: HTAB, SP, VCHAR, obs-text */
  C_HOST = 8,  /* reg-name, IP-literal and port characters */
};

static const uint8_t cls[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  4,  0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    4,  15, 6,  7,  15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 6,  /* 0x20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14, 6,  14, 6,  6,  /* 0x30 */
    6,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x40 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6,  14, 7,  15, /* 0x50 */
    7,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x60 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  7,  6,  15, 0,  /* 0x70 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0x80 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0x90 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xa0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xb0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xc0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xd0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xe0 */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0xf0 */
};

#if defined(__SSE2__)
#include <emmintrin.h>
#define H1_SSE2 1
#endif

/* Word-at-a-time tests (Bit Twiddling Hacks): is any byte of x below n
 * (n <= 128), is any byte of x equal to DEL. Exact as booleans. */
#define H1_ONES UINT64_C(0x0101010101010101)
#define H1_HIGHS UINT64_C(0x8080808080808080)
#define H1_HASLESS(x, n) (((x) - H1_ONES * (n)) & ~(x) & H1_HIGHS)
#define H1_HASDEL(x) ((((x) ^ (H1_ONES * 0x7f)) - H1_ONES) & ~((x) ^ (H1_ONES * 0x7f)) & H1_HIGHS)

static inline uint64_t load64(const unsigned char *p) {
  uint64_t x;
  memcpy(&x, p, sizeof x);
  return x;
}

/* Returns the first byte in [p, e) that may not appear in a request target
 * (a control, SP or DEL), or e. */
static const unsigned char *scan_target(const unsigned char *p, const unsigned char *e) {
#ifdef H1_SSE2
  const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f), zero = _mm_setzero_si128();
  while (e - p >= 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i bad = _mm_cmpeq_epi8(_mm_subs_epu8(x, sp), zero); /* x <= 0x20 */
    bad = _mm_or_si128(bad, _mm_cmpeq_epi8(x, del));
    int m = _mm_movemask_epi8(bad);
    if (m != 0) return p + __builtin_ctz((unsigned)m);
    p += 16;
  }
#endif
  while (e - p >= 8) {
    uint64_t x = load64(p);
    if (H1_HASLESS(x, 0x21) | H1_HASDEL(x)) break;
    p += 8;
  }
  while (p < e && (cls[*p] & C_URI)) p++;
  return p;
}

/* Returns the first byte in [p, e) that may not appear in a field value (a
 * control other than HTAB, CR included, or DEL), or e. */
static const unsigned char *scan_value(const unsigned char *p, const unsigned char *e) {
#ifdef H1_SSE2
  const __m128i c1f = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
  const __m128i tab = _mm_set1_epi8('\t'), zero = _mm_setzero_si128();
  while (e - p >= 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i bad = _mm_cmpeq_epi8(_mm_subs_epu8(x, c1f), zero); /* x <= 0x1f */
    bad = _mm_andnot_si128(_mm_cmpeq_epi8(x, tab), bad);
    bad = _mm_or_si128(bad, _mm_cmpeq_epi8(x, del));
    int m = _mm_movemask_epi8(bad);
    if (m != 0) return p + __builtin_ctz((unsigned)m);
    p += 16;
  }
#endif
  for (;;) {
    while (e - p >= 8) {
      uint64_t x = load64(p);
      if (H1_HASLESS(x, 0x20) | H1_HASDEL(x)) break;
      p += 8;
    }
    /* Step over the word that stopped the fast loop: it may hold only an
     * HTAB, which is allowed. */
    const unsigned char *stop = e - p >= 8 ? p + 8 : e;
    while (p < stop && (cls[*p] & C_VALUE)) p++;
    if (p < stop || p == e) return p;
  }
}

/* Looks at one LF of the head: it must end a CRLF, and it may be followed
 * by the CRLF of the blank line. Returns 1 to go on, 0 when *head_end is
 * set, or TUSK_H1_E_BAD_REQUEST. */
static inline int on_lf(const char *lf, const char *p, const char *e, const char **first_lf,
                        const char **head_end) {
  if (lf == p || lf[-1] != '\r') return TUSK_H1_E_BAD_REQUEST;
  if (*first_lf == NULL) *first_lf = lf;
  if (e - lf >= 3 && lf[1] == '\r' && lf[2] == '\n') {
    *head_end = lf + 3;
    return 0;
  }
  return 1;
}

/* Finds the end of the head in [p, e) (p is the request line's start):
 * sets *head_end (NULL when incomplete) and *first_lf (the request line's
 * LF, or NULL). Returns 0 or TUSK_H1_E_BAD_REQUEST for a bare LF. */
static int find_head_end(const char *p, const char *e, const char **first_lf,
                         const char **head_end) {
  const char *q = p;
  int rc;
  *first_lf = NULL;
  *head_end = NULL;
#ifdef H1_SSE2
  /* One compare per 16 bytes beats a memchr call per line. */
  const __m128i nl = _mm_set1_epi8('\n');
  for (; e - q >= 16; q += 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)q);
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, nl));
    while (m != 0) {
      rc = on_lf(q + __builtin_ctz(m), p, e, first_lf, head_end);
      if (rc <= 0) return rc;
      m &= m - 1;
    }
  }
#endif
  while (q < e) {
    const char *lf = memchr(q, '\n', (size_t)(e - q));
    if (lf == NULL) break;
    rc = on_lf(lf, p, e, first_lf, head_end);
    if (rc <= 0) return rc;
    q = lf + 1;
  }
  return 0;
}

static inline unsigned char lc(unsigned char c) {
  return (unsigned char)(c - 'A') < 26u ? (unsigned char)(c | 0x20) : c;
}

/* Case-insensitive comparison of s[0..n) with the lowercase literal lit. */
static int ieq(const char *s, size_t n, const char *lit, size_t lit_len) {
  if (n != lit_len) return 0;
  for (size_t i = 0; i < n; i++) {
    if (lc((unsigned char)s[i]) != (unsigned char)lit[i]) return 0;
  }
  return 1;
}

#define IEQ(s, n, lit) ieq((s), (n), lit, sizeof(lit) - 1)

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static int all_class(const char *s, size_t n, uint8_t c) {
  for (size_t i = 0; i < n; i++) {
    if (!(cls[(unsigned char)s[i]] & c)) return 0;
  }
  return 1;
}

int tusk_h1_error_status(int err) {
  switch (err) {
    case TUSK_H1_E_BAD_REQUEST: return 400;
    case TUSK_H1_E_URI_TOO_LONG: return 414;
    case TUSK_H1_E_HEADERS_TOO_LARGE: return 431;
    case TUSK_H1_E_NOT_IMPLEMENTED: return 501;
    case TUSK_H1_E_VERSION: return 505;
    case TUSK_H1_E_SMUGGLING: return 400;
    case TUSK_H1_E_BODY_TOO_LARGE: return 413;
    case TUSK_ENOMEM: return 500;
    default: return 400;
  }
}

const char *tusk_h1_error_str(int err) {
  switch (err) {
    case TUSK_H1_OK: return "ok";
    case TUSK_H1_E_BAD_REQUEST: return "malformed request";
    case TUSK_H1_E_URI_TOO_LONG: return "request target too long";
    case TUSK_H1_E_HEADERS_TOO_LARGE: return "request header fields too large";
    case TUSK_H1_E_NOT_IMPLEMENTED: return "transfer coding not implemented";
    case TUSK_H1_E_VERSION: return "HTTP version not supported";
    case TUSK_H1_E_SMUGGLING: return "ambiguous message framing (possible request smuggling)";
    case TUSK_H1_E_BODY_TOO_LARGE: return "request body too large";
    case TUSK_AGAIN: return "incomplete request";
    case TUSK_ENOMEM: return "out of memory";
    default: return "unknown error";
  }
}

/* Checks the request line [p, e). When done is set, e is the CR ending the
 * line and req is filled in; otherwise [p, e) is what has arrived so far
 * and the result is TUSK_AGAIN unless it is already invalid. */
static int parse_request_line(const char *p, const char *e, int done, tusk_h1_request_t *req,
                              size_t max_uri) {
  const unsigned char *s = (const unsigned char *)p, *end = (const unsigned char *)e;
  const unsigned char *m = s;
  while (m < end && (cls[*m] & C_TOKEN)) m++;
  if (m == end) return done ? TUSK_H1_E_BAD_REQUEST : TUSK_AGAIN;
  if (m == s || *m != ' ') return TUSK_H1_E_BAD_REQUEST;

  const unsigned char *t = m + 1;
  const unsigned char *te = scan_target(t, end);
  if ((size_t)(te - t) > max_uri) return TUSK_H1_E_URI_TOO_LONG;
  if (te == end) return done ? TUSK_H1_E_BAD_REQUEST : TUSK_AGAIN;
  if (te == t || *te != ' ') return TUSK_H1_E_BAD_REQUEST;

  /* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. */
  const unsigned char *v = te + 1;
  size_t vl = (size_t)(end - v);
  if (vl > 8) return TUSK_H1_E_BAD_REQUEST;
  if (vl != 8 || memcmp(v, "HTTP/1.", 7) != 0 || (v[7] != '1' && v[7] != '0')) {
    for (size_t i = 0; i < vl; i++) {
      int ok;
      if (i < 5) ok = v[i] == (unsigned char)"HTTP/"[i];
      else if (i == 6) ok = v[i] == '.';
      else ok = v[i] >= '0' && v[i] <= '9';
      if (!ok) return TUSK_H1_E_BAD_REQUEST;
    }
    if (done && vl != 8) return TUSK_H1_E_BAD_REQUEST;
    if (done) return TUSK_H1_E_VERSION;
  }
  if (!done) return TUSK_AGAIN;

  req->method = p;
  req->method_len = (size_t)(m - s);
  req->target = (const char *)t;
  req->target_len = (size_t)(te - t);
  req->version_minor = v[7] - '0';

  /* request-target forms (RFC 9112 3.2). */
  if (*t == '/') return 0;
  if (req->method_len == 7 && memcmp(p, "CONNECT", 7) == 0) return 0;
  if (req->target_len == 1 && *t == '*') {
    return req->method_len == 7 && memcmp(p, "OPTIONS", 7) == 0 ? 0 : TUSK_H1_E_BAD_REQUEST;
  }
  /* absolute-form: scheme ":" ..., scheme = ALPHA *(ALPHA / DIGIT / "+" / "-" / ".") */
  if ((unsigned char)(lc(*t) - 'a') >= 26u) return TUSK_H1_E_BAD_REQUEST;
  for (const unsigned char *c = t + 1; c < te; c++) {
    if (*c == ':') return 0;
    if (!((unsigned char)(lc(*c) - 'a') < 26u || (*c >= '0' && *c <= '9') || *c == '+' ||
          *c == '-' || *c == '.')) {
      break;
    }
  }
  return TUSK_H1_E_BAD_REQUEST;
}

/* What the framing and connection headers said, combined over all fields. */
typedef struct {
  int host_count;
  int cl_seen;
  int64_t cl;
  int te_seen;
  int te_last_chunked; /* the last coding so far is "chunked" */
  int te_bad;          /* malformed, or "chunked" not final */
  int te_unknown;      /* a coding other than chunked */
  int conn_close;
  int conn_keep_alive;
  int conn_upgrade;
  int upgrade_seen;
  int expect_continue;
} h1_framing_t;

/* Splits a comma-separated list value at the next comma: sets the element
 * [*es, *es + *el) with OWS trimmed and returns the rest, or NULL when this
 * was the last element. */
static const char *list_next(const char *s, const char *e, const char **es, size_t *el) {
  const char *c = memchr(s, ',', (size_t)(e - s));
  const char *ce = c ? c : e;
  while (s < ce && is_ows(*s)) s++;
  while (ce > s && is_ows(ce[-1])) ce--;
  *es = s;
  *el = (size_t)(ce - s);
  return c ? c + 1 : NULL;
}

static int on_content_length(h1_framing_t *f, const char *v, size_t vl) {
  const char *s = v, *e = v + vl;
  do {
    const char *es;
    size_t el;
    s = list_next(s, e, &es, &el);
    if (el == 0 || el > H1_CL_DIGITS) return TUSK_H1_E_BAD_REQUEST;
    int64_t n = 0;
    for (size_t i = 0; i < el; i++) {
      if (es[i] < '0' || es[i] > '9') return TUSK_H1_E_BAD_REQUEST;
      n = n * 10 + (es[i] - '0');
    }
    if (f->cl_seen && f->cl != n) return TUSK_H1_E_SMUGGLING;
    f->cl_seen = 1;
    f->cl = n;
  } while (s != NULL);
  return 0;
}

static void on_transfer_encoding(h1_framing_t *f, const char *v, size_t vl) {
  const char *s = v, *e = v + vl;
  f->te_seen = 1;
  do {
    const char *es;
    size_t el;
    s = list_next(s, e, &es, &el);
    if (f->te_last_chunked) f->te_bad = 1;
    f->te_last_chunked = 0;
    if (el == 0 || !all_class(es, el, C_TOKEN)) {
      f->te_bad = 1;
    } else if (IEQ(es, el, "chunked")) {
      f->te_last_chunked = 1;
    } else {
      f->te_unknown = 1;
    }
  } while (s != NULL);
}

static void on_connection(h1_framing_t *f, const char *v, size_t vl) {
  const char *s = v, *e = v + vl;
  do {
    const char *es;
    size_t el;
    s = list_next(s, e, &es, &el);
    if (IEQ(es, el, "close")) f->conn_close = 1;
    else if (IEQ(es, el, "keep-alive")) f->conn_keep_alive = 1;
    else if (IEQ(es, el, "upgrade")) f->conn_upgrade = 1;
  } while (s != NULL);
}

/* Interprets one field; returns 0 or a tusk_h1_error_t. */
static int on_field(h1_framing_t *f, tusk_h1_request_t *req, const tusk_h1_header_t *h) {
  const char *n = h->name, *v = h->value;
  size_t vl = h->value_len;
  switch (h->name_len) {
    case 4:
      if (IEQ(n, 4, "host")) {
        if (++f->host_count > 1) return TUSK_H1_E_BAD_REQUEST;
        if (!all_class(v, vl, C_HOST)) return TUSK_H1_E_BAD_REQUEST;
        req->host = v;
        req->host_len = vl;
      }
      break;
    case 6:
      if (IEQ(n, 6, "expect") && IEQ(v, vl, "100-continue")) f->expect_continue = 1;
      break;
    case 7:
      if (IEQ(n, 7, "upgrade")) f->upgrade_seen = 1;
      break;
    case 10:
      if (IEQ(n, 10, "connection")) on_connection(f, v, vl);
      break;
    case 14:
      if (IEQ(n, 14, "content-length")) return on_content_length(f, v, vl);
      break;
    case 17:
      if (IEQ(n, 17, "transfer-encoding")) on_transfer_encoding(f, v, vl);
      break;
    default:
      break;
  }
  return 0;
}

/* Parses the field lines in [p, hend), where hend is the CR of the blank
 * line ending the head. Every LF in the range is known to follow a CR, and
 * the CR at hend stops every scan, so the inner loops need no bound. */
static int parse_fields(const char *p, const char *hend, tusk_h1_request_t *req,
                        size_t max_headers) {
  h1_framing_t f;
  memset(&f, 0, sizeof f);
  const unsigned char *s = (const unsigned char *)p, *he = (const unsigned char *)hend;

  while (s < he) {
    /* A line starting with whitespace is obs-fold, or whitespace between
     * the request line and the first field (RFC 9112 2.2): both smuggle. */
    if (*s == ' ' || *s == '\t') return TUSK_H1_E_SMUGGLING;
    /* Unrolled: each byte is read only after the one before it was a
     * token byte, so the CR ending the line still stops the scan. */
    const unsigned char *n = s;
    for (;;) {
      if (!(cls[n[0]] & C_TOKEN)) break;
      if (!(cls[n[1]] & C_TOKEN)) { n += 1; break; }
      if (!(cls[n[2]] & C_TOKEN)) { n += 2; break; }
      if (!(cls[n[3]] & C_TOKEN)) { n += 3; break; }
      n += 4;
    }
    if (*n != ':') return is_ows((char)*n) ? TUSK_H1_E_SMUGGLING : TUSK_H1_E_BAD_REQUEST;
    if (n == s) return TUSK_H1_E_BAD_REQUEST;

    const unsigned char *v = n + 1;
    while (*v == ' ' || *v == '\t') v++;
    const unsigned char *ve = scan_value(v, he);
    /* The scan stops at a CR (ends the line only before LF), a control
     * byte or DEL. */
    if (ve[0] != '\r' || ve[1] != '\n') return TUSK_H1_E_BAD_REQUEST;
    const unsigned char *vt = ve;
    while (vt > v && (vt[-1] == ' ' || vt[-1] == '\t')) vt--;

    if (req->num_headers >= max_headers) return TUSK_H1_E_HEADERS_TOO_LARGE;
    tusk_h1_header_t *h = &req->headers[req->num_headers++];
    h->name = (const char *)s;
    h->name_len = (size_t)(n - s);
    h->value = (const char *)v;
    h->value_len = (size_t)(vt - v);
    int rc = on_field(&f, req, h);
    if (rc != 0) return rc;
    s = ve + 2;
  }

  if (f.te_seen) {
    if (req->version_minor == 0 || f.cl_seen) return TUSK_H1_E_SMUGGLING;
    if (f.te_bad) return TUSK_H1_E_BAD_REQUEST;
    if (f.te_unknown) return TUSK_H1_E_NOT_IMPLEMENTED;
    req->chunked = 1;
  }
  if (f.cl_seen) req->content_length = f.cl;
  if (req->version_minor == 1 && f.host_count == 0) return TUSK_H1_E_BAD_REQUEST;
  if (req->version_minor == 1) {
    req->keep_alive = !f.conn_close;
  } else {
    req->keep_alive = f.conn_keep_alive && !f.conn_close;
  }
  req->expect_continue = f.expect_continue;
  req->upgrade = f.conn_upgrade && f.upgrade_seen;
  return 0;
}

static size_t add_sat(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

int tusk_h1_parse_request(const char *buf, size_t len, tusk_h1_request_t *req,
                          const tusk_h1_limits_t *lim) {
  size_t max_head = TUSK_MIN(lim->max_head, (size_t)INT_MAX);
  size_t max_line = add_sat(lim->max_uri, H1_LINE_SLACK);
  const char *scan_end = buf + TUSK_MIN(len, max_head);
  const char *p = buf;
  int rc;

  req->method = NULL;
  req->method_len = 0;
  req->target = NULL;
  req->target_len = 0;
  req->version_minor = 0;
  req->num_headers = 0;
  req->content_length = -1;
  req->chunked = 0;
  req->keep_alive = 0;
  req->expect_continue = 0;
  req->upgrade = 0;
  req->host = NULL;
  req->host_len = 0;
  if (len == 0) return TUSK_AGAIN; /* buf may be NULL, as in an empty tusk_buf_t */

  /* Empty lines before the request line are ignored (RFC 9112 2.2). */
  while (scan_end - p >= 2 && p[0] == '\r' && p[1] == '\n') p += 2;

  /* Find the blank line; every LF on the way must end a CRLF. */
  const char *line_lf, *head_end;
  rc = find_head_end(p, scan_end, &line_lf, &head_end);
  if (rc != 0) return rc;

  if (head_end == NULL) {
    if (line_lf == NULL) {
      const char *e = scan_end;
      if (e > p && e[-1] == '\r') e--;
      rc = parse_request_line(p, e, 0, req, lim->max_uri);
      if (rc != TUSK_AGAIN) return rc;
      if ((size_t)(e - p) > max_line) return TUSK_H1_E_URI_TOO_LONG;
    } else {
      rc = parse_request_line(p, line_lf - 1, 1, req, lim->max_uri);
      if (rc != 0) return rc;
      if ((size_t)(line_lf - 1 - p) > max_line) return TUSK_H1_E_URI_TOO_LONG;
    }
    return len > max_head ? TUSK_H1_E_HEADERS_TOO_LARGE : TUSK_AGAIN;
  }

  rc = parse_request_line(p, line_lf - 1, 1, req, lim->max_uri);
  if (rc != 0) return rc;
  if ((size_t)(line_lf - 1 - p) > max_line) return TUSK_H1_E_URI_TOO_LONG;
  rc = parse_fields(line_lf + 1, head_end - 2, req, lim->max_headers);
  if (rc != 0) return rc;
  return (int)(head_end - buf);
}

const tusk_h1_header_t *tusk_h1_find_header(const tusk_h1_request_t *req, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < req->num_headers; i++) {
    const tusk_h1_header_t *h = &req->headers[i];
    if (h->name_len != n) continue;
    size_t j = 0;
    while (j < n && lc((unsigned char)h->name[j]) == lc((unsigned char)name[j])) j++;
    if (j == n) return h;
  }
  return NULL;
}

/* Chunked decoder states. */
enum {
  CH_SIZE,     /* hex digits of chunk-size */
  CH_SIZE_WS,  /* BWS after the size, before ';' */
  CH_EXT,      /* chunk-ext, up to CR */
  CH_SIZE_LF,  /* LF ending the size line */
  CH_DATA,     /* chunk-data */
  CH_DATA_CR,  /* CRLF after chunk-data */
  CH_DATA_LF,
  CH_TR_START, /* start of a trailer line, or the final CRLF */
  CH_TR_NAME,
  CH_TR_VALUE,
  CH_TR_LF,
  CH_END_LF,   /* LF of the final CRLF */
  CH_DONE,
  CH_BAD,      /* sticky errors */
  CH_TOO_LARGE,
};

void tusk_h1_chunked_init(tusk_h1_chunked_t *d, size_t max_trailer) {
  memset(d, 0, sizeof *d);
  d->state = CH_SIZE;
  d->max_trailer = max_trailer;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lc(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int tusk_h1_chunked_feed(tusk_h1_chunked_t *d, const char *in, size_t len, size_t *consumed,
                         tusk_buf_t *out) {
  const unsigned char *s = (const unsigned char *)in;
  size_t i = 0;

  switch (d->state) {
    case CH_DONE: *consumed = 0; return 0;
    case CH_BAD: *consumed = 0; return TUSK_H1_E_BAD_REQUEST;
    case CH_TOO_LARGE: *consumed = 0; return TUSK_H1_E_HEADERS_TOO_LARGE;
    default: break;
  }

  while (i < len) {
    unsigned char c = s[i];
    switch (d->state) {
      case CH_SIZE: {
        int v = hexval(c);
        if (v >= 0) {
          if (d->line_len >= H1_CHUNK_SIZE_DIGITS) goto bad;
          d->remaining = d->remaining << 4 | (uint64_t)v;
          d->line_len++;
          break;
        }
        if (d->line_len == 0) goto bad;
        if (c == '\r') {
          d->state = CH_SIZE_LF;
        } else if (c == ';') {
          d->state = CH_EXT;
          d->line_len++;
        } else if (c == ' ' || c == '\t') {
          d->state = CH_SIZE_WS;
          d->line_len++;
        } else {
          goto bad;
        }
        break;
      }
      case CH_SIZE_WS:
        /* BWS is allowed only before a chunk-ext (RFC 9112 7.1.1). */
        if (c == ';') d->state = CH_EXT;
        else if (c != ' ' && c != '\t') goto bad;
        if (++d->line_len > H1_CHUNK_LINE_MAX) goto bad;
        break;
      case CH_EXT:
        if (c == '\r') {
          d->state = CH_SIZE_LF;
          break;
        }
        if (!(cls[c] & C_VALUE)) goto bad;
        if (++d->line_len > H1_CHUNK_LINE_MAX) goto bad;
        break;
      case CH_SIZE_LF:
        if (c != '\n') goto bad;
        d->line_len = 0;
        d->state = d->remaining == 0 ? CH_TR_START : CH_DATA;
        break;
      case CH_DATA: {
        size_t n = len - i;
        if ((uint64_t)n > d->remaining) n = (size_t)d->remaining;
        if (tusk_buf_append(out, in + i, n) != 0) {
          *consumed = i;
          return TUSK_ENOMEM;
        }
        d->remaining -= n;
        i += n;
        if (d->remaining == 0) d->state = CH_DATA_CR;
        continue;
      }
      case CH_DATA_CR:
        if (c != '\r') goto bad;
        d->state = CH_DATA_LF;
        break;
      case CH_DATA_LF:
        if (c != '\n') goto bad;
        d->state = CH_SIZE;
        break;
      case CH_TR_START:
        if (c == '\r') {
          d->state = CH_END_LF;
          break;
        }
        /* Whitespace here would be obs-fold. */
        if (!(cls[c] & C_TOKEN)) goto bad;
        d->state = CH_TR_NAME;
        goto trailer_byte;
      case CH_TR_NAME:
        if (c == ':') d->state = CH_TR_VALUE;
        else if (!(cls[c] & C_TOKEN)) goto bad;
        goto trailer_byte;
      case CH_TR_VALUE:
        if (c == '\r') d->state = CH_TR_LF;
        else if (!(cls[c] & C_VALUE)) goto bad;
        goto trailer_byte;
      case CH_TR_LF:
        if (c != '\n') goto bad;
        d->state = CH_TR_START;
      trailer_byte:
        if (++d->trailer_len > d->max_trailer) {
          d->state = CH_TOO_LARGE;
          *consumed = i;
          return TUSK_H1_E_HEADERS_TOO_LARGE;
        }
        break;
      case CH_END_LF:
        if (c != '\n') goto bad;
        d->state = CH_DONE;
        *consumed = i + 1;
        return 0;
      default:
        goto bad;
    }
    i++;
  }
  *consumed = i;
  return TUSK_AGAIN;

bad:
  d->state = CH_BAD;
  *consumed = i;
  return TUSK_H1_E_BAD_REQUEST;
}

int tusk_h1_read_message(const char *buf, size_t len, tusk_h1_request_t *req, const tusk_h1_limits_t *lim,
                         size_t max_body, tusk_buf_t *body, size_t *head_len) {
  *head_len = 0;
  int n = tusk_h1_parse_request(buf, len, req, lim);
  if (n <= 0) return n == 0 ? TUSK_H1_E_BAD_REQUEST : n;
  *head_len = (size_t)n;
  size_t at = (size_t)n;
  if (req->chunked) {
    tusk_h1_chunked_t d;
    tusk_h1_chunked_init(&d, 8192);
    size_t consumed = 0, before = body->len;
    int rc = tusk_h1_chunked_feed(&d, buf + at, len - at, &consumed, body);
    if (body->len - before > max_body) return TUSK_H1_E_BODY_TOO_LARGE;
    if (rc != 0) return rc;
    if (at + consumed > INT32_MAX) return TUSK_H1_E_BODY_TOO_LARGE;
    return (int)(at + consumed);
  }
  uint64_t cl = req->content_length > 0 ? (uint64_t)req->content_length : 0;
  if (cl > max_body || at + cl > INT32_MAX) return TUSK_H1_E_BODY_TOO_LARGE;
  if (len - at < cl) return TUSK_AGAIN;
  if (cl && tusk_buf_append(body, buf + at, (size_t)cl) != 0) return TUSK_ENOMEM;
  return (int)(at + (size_t)cl);
}
