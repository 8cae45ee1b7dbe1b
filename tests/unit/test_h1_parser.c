/* Unit tests for src/http/h1_parser.c: what a client sees (the status each
 * rejection maps to) and what the server gets (the parsed fields). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"
#include "http/h1_parser.h"

#include "check.h"

#define MAX_FIELDS 64

static tusk_h1_header_t fields[MAX_FIELDS];
static tusk_h1_request_t req;
static const tusk_h1_limits_t dflt = {8192, 2048, MAX_FIELDS};

static int parse_lim(const char *s, size_t len, const tusk_h1_limits_t *lim) {
  memset(&req, 0, sizeof req);
  req.headers = fields;
  return tusk_h1_parse_request(s, len, &req, lim);
}

static int parse(const char *s) { return parse_lim(s, strlen(s), &dflt); }

static int span_eq(const char *p, size_t n, const char *s) {
  return p != NULL && n == strlen(s) && memcmp(p, s, n) == 0;
}

/* Every proper prefix of a valid head must be TUSK_AGAIN. */
static void check_incremental(const char *s, const tusk_h1_limits_t *lim) {
  size_t n = strlen(s);
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    /* A copy of exactly i bytes, so ASan catches any read past len. */
    char *p = malloc(i ? i : 1);
    memcpy(p, s, i);
    int rc = parse_lim(p, i, lim);
    free(p);
    if (rc != TUSK_AGAIN) {
      fprintf(stderr, "prefix %zu of %zu: rc %d\n", i, n, rc);
      bad = 1;
      break;
    }
  }
  CHECK(!bad);
  CHECK_EQ(parse_lim(s, n, lim), n);
}

/* Expects the head to be rejected with err and HTTP status. */
static void check_reject(const char *s, int err, int status) {
  int rc = parse(s);
  if (rc != err) fprintf(stderr, "rejecting %s\n", s);
  CHECK_EQ(rc, err);
  CHECK_EQ(tusk_h1_error_status(rc), status);
}

static void test_simple_get(void) {
  const char *s = "GET /index.php?a=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK(span_eq(req.method, req.method_len, "GET"));
  CHECK(span_eq(req.target, req.target_len, "/index.php?a=1"));
  CHECK_EQ(req.version_minor, 1);
  CHECK_EQ(req.num_headers, 2);
  CHECK(span_eq(fields[0].name, fields[0].name_len, "Host"));
  CHECK(span_eq(fields[0].value, fields[0].value_len, "example.com"));
  CHECK(span_eq(fields[1].name, fields[1].name_len, "User-Agent"));
  CHECK(span_eq(req.host, req.host_len, "example.com"));
  CHECK_EQ(req.content_length, -1);
  CHECK_EQ(req.chunked, 0);
  CHECK_EQ(req.keep_alive, 1);
  CHECK_EQ(req.expect_continue, 0);
  CHECK_EQ(req.upgrade, 0);

  const tusk_h1_header_t *h = tusk_h1_find_header(&req, "user-agent");
  CHECK(h == &fields[1]);
  CHECK(tusk_h1_find_header(&req, "HOST") == &fields[0]);
  CHECK(tusk_h1_find_header(&req, "Hos") == NULL);
  CHECK(tusk_h1_find_header(&req, "Cookie") == NULL);

  /* OWS around values is stripped, HTAB inside is kept, obs-text allowed. */
  s = "GET / HTTP/1.1\r\nHost:x\r\nA: \t v \t w\t \r\nB:\r\nC: caf\xc3\xa9\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK(span_eq(fields[0].value, fields[0].value_len, "x"));
  CHECK(span_eq(fields[1].value, fields[1].value_len, "v \t w"));
  CHECK(span_eq(fields[2].value, fields[2].value_len, ""));
  CHECK(span_eq(fields[3].value, fields[3].value_len, "caf\xc3\xa9"));

  /* HTTP/1.0 needs no Host, and has no keep-alive by default. */
  s = "GET / HTTP/1.0\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK_EQ(req.version_minor, 0);
  CHECK_EQ(req.keep_alive, 0);
  CHECK(req.host == NULL);
  CHECK_EQ(req.num_headers, 0);

  /* A long value crosses the word-at-a-time scan; a tab late in it too. */
  char big[1200];
  int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: h\r\nCookie: ");
  memset(big + n, 'c', 1000);
  big[n + 995] = '\t';
  strcpy(big + n + 1000, "\r\n\r\n");
  CHECK_EQ(parse(big), strlen(big));
  CHECK_EQ(fields[1].value_len, 1000);
  big[n + 997] = '\x01';
  CHECK_EQ(parse(big), TUSK_H1_E_BAD_REQUEST);
}

static void test_pipelined(void) {
  const char *a = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  const char *b = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
  const char *c = "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  char buf[512];
  snprintf(buf, sizeof buf, "%s%shello%s", a, b, c);
  size_t off = 0, len = strlen(buf);

  int rc = parse_lim(buf, len, &dflt);
  CHECK_EQ(rc, strlen(a));
  CHECK(span_eq(req.target, req.target_len, "/a"));
  off += (size_t)rc;
  rc = parse_lim(buf + off, len - off, &dflt);
  CHECK_EQ(rc, strlen(b));
  CHECK_EQ(req.content_length, 5);
  off += (size_t)rc + 5;
  rc = parse_lim(buf + off, len - off, &dflt);
  CHECK_EQ(rc, strlen(c));
  CHECK(span_eq(req.target, req.target_len, "/c"));
  CHECK_EQ(req.keep_alive, 0);
  CHECK_EQ(off + (size_t)rc, len);

  /* Empty lines before a request line count as part of its head. */
  const char *d = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\nGET";
  CHECK_EQ(parse(d), strlen(d) - 3);
  CHECK(span_eq(req.method, req.method_len, "GET"));
  CHECK_EQ(parse("\r\n"), TUSK_AGAIN);
  memset(&req, 0, sizeof req);
  req.headers = fields;
  CHECK_EQ(tusk_h1_parse_request(NULL, 0, &req, &dflt), TUSK_AGAIN);
  CHECK_EQ(parse("\r\n\r\n\r"), TUSK_AGAIN);
}

static void test_incremental(void) {
  check_incremental("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &dflt);
  check_incremental("\r\nPOST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                    "Expect: 100-continue\r\nX:\t a\tb \r\n\r\n",
                    &dflt);
  check_incremental("GET / HTTP/1.0\r\n\r\n", &dflt);
  check_incremental("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &dflt);

  /* Near the limits, prefixes still wait rather than fail. */
  tusk_h1_limits_t lim = {64, 16, 2};
  char s[128];
  snprintf(s, sizeof s, "GET /%s HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n", "123456789012345");
  check_incremental(s, &lim); /* target 16 bytes */
  /* The longest request line allowed: max_uri + 32 bytes. */
  snprintf(s, sizeof s, "%s /%s HTTP/1.1\r\nHost: h\r\n\r\n", "ABCDEFGHIJKLMNOPQRSTUV",
           "123456789012345");
  CHECK_EQ(strlen(s) - strlen("\r\nHost: h\r\n\r\n"), 16 + 32);
  lim.max_head = 128;
  check_incremental(s, &lim);

  /* Garbage is turned away before the head is complete. */
  CHECK_EQ(parse("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), TUSK_H1_E_BAD_REQUEST);
  CHECK_EQ(parse("GET / HTTP/1.1\nHost"), TUSK_H1_E_BAD_REQUEST);
  CHECK_EQ(parse("GET / HTTP/2"), TUSK_AGAIN);
  CHECK_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\n"), TUSK_AGAIN);
  CHECK_EQ(parse("GET / HTTP/1.1x"), TUSK_H1_E_BAD_REQUEST);
  CHECK_EQ(parse("GET / FTP"), TUSK_H1_E_BAD_REQUEST);
  CHECK_EQ(parse("GET /\x01"), TUSK_H1_E_BAD_REQUEST);
  CHECK_EQ(parse("GET / HTTP/2.0\r\nHost: h\r\n"), TUSK_H1_E_VERSION);
}

static void test_targets(void) {
  const char *s = "GET http://example.com:8080/p?q#f HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK(span_eq(req.target, req.target_len, "http://example.com:8080/p?q#f"));

  s = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK(span_eq(req.target, req.target_len, "*"));
  check_reject("GET * HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);

  s = "QUERY /search HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK(span_eq(req.method, req.method_len, "QUERY"));
  CHECK_EQ(req.content_length, 2);

  s = "M-SEARCH /x HTTP/1.1\r\nHost: h\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  s = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  s = "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));

  check_reject("GET x HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET 1http://x/ HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET ht_tp://x/ HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  s = "GET svn+ssh.2-x:rest HTTP/1.1\r\nHost: h\r\nAb: c\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  check_reject("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
}

static void test_request_line_rejects(void) {
  check_reject("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET /  HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET /\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / http/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/10.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.x\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1,1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/2.0\r\nHost: h\r\n\r\n", TUSK_H1_E_VERSION, 505);
  check_reject("GET / HTTP/1.2\r\nHost: h\r\n\r\n", TUSK_H1_E_VERSION, 505);
  check_reject("GET / HTTP/0.9\r\nHost: h\r\n\r\n", TUSK_H1_E_VERSION, 505);
  check_reject("GET / HTTP/3.1\r\n\r\n", TUSK_H1_E_VERSION, 505);
  check_reject("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
}

static void test_field_rejects(void) {
  check_reject("GET / HTTP/1.1\r\nHost: h\r\nFo(o: x\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1\r\nHost: h\r\nFoo : x\r\n\r\n", TUSK_H1_E_SMUGGLING, 400);
  check_reject("GET / HTTP/1.1\r\nHost: h\r\nFoo\t: x\r\n\r\n", TUSK_H1_E_SMUGGLING, 400);
  check_reject("GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1\r\nHost: h\r\nFoo\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1\r\nHost: h\r\nF\xc3\xa9: x\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);

  /* NUL, bare CR, controls and DEL in values; HTAB is fine. */
  static const char bad[] = {'\0', '\r', '\x01', '\x08', '\x0b', '\x1f', '\x7f'};
  for (size_t i = 0; i < sizeof bad; i++) {
    char s[64];
    int n = snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: h\r\nX: a");
    s[n++] = bad[i];
    memcpy(s + n, "b\r\n\r\n", 6);
    int rc = parse_lim(s, (size_t)n + 5, &dflt);
    CHECK_EQ(rc, TUSK_H1_E_BAD_REQUEST);
    CHECK_EQ(tusk_h1_error_status(rc), 400);
  }
  /* A bare CR right before the line's CRLF, and in a name. */
  check_reject("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1\r\nHost: h\r\nX\r: a\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);

  /* obs-fold, and whitespace before the first field. */
  check_reject("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", TUSK_H1_E_SMUGGLING, 400);
  check_reject("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", TUSK_H1_E_SMUGGLING, 400);
  check_reject("GET / HTTP/1.1\r\n Host: h\r\n\r\n", TUSK_H1_E_SMUGGLING, 400);

  /* Bare LF anywhere in the head. */
  check_reject("GET / HTTP/1.1\nHost: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1\r\nHost: h\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1\r\nHost: h\r\n\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.0\n\n", TUSK_H1_E_BAD_REQUEST, 400);
}

static void test_host(void) {
  check_reject("GET / HTTP/1.1\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1\r\nX: h\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", TUSK_H1_E_BAD_REQUEST, 400);

  const char *s = "GET / HTTP/1.1\r\nhOST: [::1]:8080\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK(span_eq(req.host, req.host_len, "[::1]:8080"));
  s = "GET / HTTP/1.1\r\nHost:\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK(req.host != NULL);
  CHECK_EQ(req.host_len, 0);
}

static void test_content_length(void) {
  const char *s = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 123\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK_EQ(req.content_length, 123);
  s = "POST / HTTP/1.1\r\nHost: h\r\ncontent-length:  0 \r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK_EQ(req.content_length, 0);
  s = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999999999999\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK_EQ(req.content_length, 999999999999999999LL);
  check_reject("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000000000000000\r\n\r\n",
               TUSK_H1_E_BAD_REQUEST, 400);
  check_reject("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
               TUSK_H1_E_BAD_REQUEST, 400);

  /* Identical duplicates, as fields or a list, are one value. */
  s = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK_EQ(req.content_length, 5);
  s = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 , 5,5\r\n\r\n";
  CHECK_EQ(parse(s), strlen(s));
  CHECK_EQ(req.content_length, 5);

  check_reject("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
               TUSK_H1_E_SMUGGLING, 400);
  check_reject("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n",
               TUSK_H1_E_SMUGGLING, 400);
  static const char *const bad[] = {"", "abc", "-1", "+5", "5,", ",5", "5,,5", "0x10",
                                    "5 5", "1e3", "5;", "\t"};
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(bad); i++) {
    char buf[128];
    snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %s\r\n\r\n", bad[i]);
    check_reject(buf, TUSK_H1_E_BAD_REQUEST, 400);
  }
}

static void test_transfer_encoding(void) {
  static const char *const ok[] = {"chunked", "CHUNKED", "Chunked", " chunked\t"};
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(ok); i++) {
    char buf[128];
    snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:%s\r\n\r\n", ok[i]);
    CHECK_EQ(parse(buf), strlen(buf));
    CHECK_EQ(req.chunked, 1);
    CHECK_EQ(req.content_length, -1);
  }

  static const struct {
    const char *te;
    int err;
    int status;
  } bad[] = {
      {"gzip, chunked", TUSK_H1_E_NOT_IMPLEMENTED, 501},
      {"gzip", TUSK_H1_E_NOT_IMPLEMENTED, 501},
      {"identity", TUSK_H1_E_NOT_IMPLEMENTED, 501},
      {"x-custom,chunked", TUSK_H1_E_NOT_IMPLEMENTED, 501},
      {"chunked, gzip", TUSK_H1_E_BAD_REQUEST, 400},
      {"chunked, chunked", TUSK_H1_E_BAD_REQUEST, 400},
      {"gzip, chunked, gzip", TUSK_H1_E_BAD_REQUEST, 400},
      {"chunked;a=b", TUSK_H1_E_BAD_REQUEST, 400},
      {"chunked,", TUSK_H1_E_BAD_REQUEST, 400},
      {",chunked", TUSK_H1_E_BAD_REQUEST, 400},
      {"", TUSK_H1_E_BAD_REQUEST, 400},
      {"\"chunked\"", TUSK_H1_E_BAD_REQUEST, 400},
      {"chunked x", TUSK_H1_E_BAD_REQUEST, 400},
  };
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(bad); i++) {
    char buf[128];
    snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n",
             bad[i].te);
    check_reject(buf, bad[i].err, bad[i].status);
  }

  /* Several fields form one list. */
  check_reject("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
               "Transfer-Encoding: chunked\r\n\r\n",
               TUSK_H1_E_NOT_IMPLEMENTED, 501);
  check_reject("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
               "Transfer-Encoding: chunked\r\n\r\n",
               TUSK_H1_E_BAD_REQUEST, 400);

  /* Framing conflicts. */
  check_reject("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
               "Transfer-Encoding: chunked\r\n\r\n",
               TUSK_H1_E_SMUGGLING, 400);
  check_reject("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
               "Content-Length: 5\r\n\r\n",
               TUSK_H1_E_SMUGGLING, 400);
  check_reject("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
               "Content-Length: 5\r\n\r\n",
               TUSK_H1_E_SMUGGLING, 400);
  check_reject("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TUSK_H1_E_SMUGGLING,
               400);
}

static void test_connection(void) {
  struct {
    const char *req;
    int keep_alive, upgrade, expect;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1, 0, 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 0, 0, 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n", 0, 0, 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n", 0, 0, 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo\r\nConnection: close\r\n\r\n", 0, 0, 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", 1, 0, 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", 1, 0, 0},
      {"GET / HTTP/1.0\r\n\r\n", 0, 0, 0},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, 0, 0},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1, 0, 0},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, 0, 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 1, 1,
       0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, upgrade\r\nupgrade: h2c\r\n\r\n",
       1, 1, 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n", 1, 0, 0},
      {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", 1, 0, 0},
      {"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n", 1, 0, 1},
      {"PUT / HTTP/1.1\r\nHost: h\r\nExpect:  100-Continue \r\n\r\n", 1, 0, 1},
      {"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", 1, 0, 0},
  };
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(cases); i++) {
    CHECK_EQ(parse(cases[i].req), strlen(cases[i].req));
    CHECK_EQ(req.keep_alive, cases[i].keep_alive);
    CHECK_EQ(req.upgrade, cases[i].upgrade);
    CHECK_EQ(req.expect_continue, cases[i].expect);
  }
}

/* Builds "GET /<target> HTTP/1.1\r\nHost: h\r\n<nfields x 'Xn: v'>\r\n". */
static size_t build(char *buf, size_t target_len, size_t nfields, size_t pad) {
  size_t n = 0;
  n += (size_t)sprintf(buf, "GET /");
  memset(buf + n, 'a', target_len - 1);
  n += target_len - 1;
  n += (size_t)sprintf(buf + n, " HTTP/1.1\r\nHost: h\r\n");
  for (size_t i = 0; i < nfields; i++) n += (size_t)sprintf(buf + n, "X%zu: v\r\n", i);
  if (pad) {
    n += (size_t)sprintf(buf + n, "P: ");
    memset(buf + n, 'p', pad);
    n += pad;
    n += (size_t)sprintf(buf + n, "\r\n");
  }
  n += (size_t)sprintf(buf + n, "\r\n");
  return n;
}

static void test_limits(void) {
  static char buf[16384];
  tusk_h1_limits_t lim = {4096, 100, 8};

  /* Target: exactly max_uri, then one past. */
  size_t n = build(buf, 100, 0, 0);
  CHECK_EQ(parse_lim(buf, n, &lim), n);
  n = build(buf, 101, 0, 0);
  int rc = parse_lim(buf, n, &lim);
  CHECK_EQ(rc, TUSK_H1_E_URI_TOO_LONG);
  CHECK_EQ(tusk_h1_error_status(rc), 414);
  /* ... and while the line is still arriving. */
  CHECK_EQ(parse_lim(buf, 4 + 101, &lim), TUSK_H1_E_URI_TOO_LONG);
  CHECK_EQ(parse_lim(buf, 4 + 100, &lim), TUSK_AGAIN);
  /* A first line without CRLF over max_uri + 32 bytes is 414 whatever it is. */
  memset(buf, 'A', 200);
  CHECK_EQ(parse_lim(buf, 132, &lim), TUSK_AGAIN);
  CHECK_EQ(parse_lim(buf, 133, &lim), TUSK_H1_E_URI_TOO_LONG);

  /* Fields: exactly max_headers (Host + 7), then one past. */
  n = build(buf, 1, 7, 0);
  CHECK_EQ(parse_lim(buf, n, &lim), n);
  CHECK_EQ(req.num_headers, 8);
  n = build(buf, 1, 8, 0);
  rc = parse_lim(buf, n, &lim);
  CHECK_EQ(rc, TUSK_H1_E_HEADERS_TOO_LARGE);
  CHECK_EQ(tusk_h1_error_status(rc), 431);
  lim.max_headers = 0;
  n = build(buf, 1, 0, 0);
  CHECK_EQ(parse_lim(buf, n, &lim), TUSK_H1_E_HEADERS_TOO_LARGE);
  n = sprintf(buf, "GET / HTTP/1.0\r\n\r\n");
  CHECK_EQ(parse_lim(buf, n, &lim), n);
  lim.max_headers = 8;

  /* Head: exactly max_head bytes, then one past, complete or not. */
  n = build(buf, 1, 0, 1);
  size_t base = n - 1;
  n = build(buf, 1, 0, lim.max_head - base);
  CHECK_EQ(n, lim.max_head);
  CHECK_EQ(parse_lim(buf, n, &lim), n);
  n = build(buf, 1, 0, lim.max_head - base + 1);
  CHECK_EQ(n, lim.max_head + 1);
  rc = parse_lim(buf, n, &lim);
  CHECK_EQ(rc, TUSK_H1_E_HEADERS_TOO_LARGE);
  CHECK_EQ(tusk_h1_error_status(rc), 431);
  CHECK_EQ(parse_lim(buf, n - 1, &lim), TUSK_AGAIN);
  CHECK_EQ(parse_lim(buf, n - 4, &lim), TUSK_AGAIN);
  n = build(buf, 1, 0, lim.max_head);
  CHECK_EQ(parse_lim(buf, lim.max_head, &lim), TUSK_AGAIN);
  CHECK_EQ(parse_lim(buf, lim.max_head + 1, &lim), TUSK_H1_E_HEADERS_TOO_LARGE);
  /* Empty lines before the request count towards max_head. */
  for (size_t i = 0; i < 4100; i += 2) memcpy(buf + i, "\r\n", 2);
  CHECK_EQ(parse_lim(buf, 4096, &lim), TUSK_AGAIN);
  CHECK_EQ(parse_lim(buf, 4098, &lim), TUSK_H1_E_HEADERS_TOO_LARGE);
}

static void test_error_strings(void) {
  static const int errs[] = {TUSK_H1_OK,
                             TUSK_H1_E_BAD_REQUEST,
                             TUSK_H1_E_URI_TOO_LONG,
                             TUSK_H1_E_HEADERS_TOO_LARGE,
                             TUSK_H1_E_NOT_IMPLEMENTED,
                             TUSK_H1_E_VERSION,
                             TUSK_H1_E_SMUGGLING,
                             TUSK_ENOMEM,
                             -9999};
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(errs); i++) {
    const char *s = tusk_h1_error_str(errs[i]);
    CHECK(s != NULL && s[0] != '\0');
  }
  CHECK(strcmp(tusk_h1_error_str(TUSK_H1_E_SMUGGLING), tusk_h1_error_str(TUSK_H1_E_BAD_REQUEST)) !=
        0);
  CHECK_EQ(tusk_h1_error_status(TUSK_ENOMEM), 500);
}

/* ---- chunked ---- */

/* Decodes in one call; returns the rc, *consumed and the output in out. */
static int dechunk(const char *in, size_t len, size_t max_trailer, size_t *consumed,
                   tusk_buf_t *out) {
  tusk_h1_chunked_t d;
  tusk_h1_chunked_init(&d, max_trailer);
  tusk_buf_reset(out);
  return tusk_h1_chunked_feed(&d, in, len, consumed, out);
}

static void check_chunked_ok(const char *in, const char *want, size_t max_trailer) {
  tusk_buf_t out;
  tusk_buf_init(&out);
  size_t used = 0, len = strlen(in);
  int rc = dechunk(in, len, max_trailer, &used, &out);
  if (rc != 0) fprintf(stderr, "chunked %s: rc %d\n", in, rc);
  CHECK_EQ(rc, 0);
  CHECK_EQ(used, len);
  CHECK(out.len == strlen(want) && memcmp(out.data ? out.data : "", want, out.len) == 0);
  tusk_buf_dispose(&out);
}

static void check_chunked_err(const char *in, int err, size_t max_trailer) {
  tusk_buf_t out;
  tusk_buf_init(&out);
  size_t used = 0;
  int rc = dechunk(in, strlen(in), max_trailer, &used, &out);
  if (rc != err) fprintf(stderr, "chunked %s: rc %d\n", in, rc);
  CHECK_EQ(rc, err);
  CHECK(used <= strlen(in));
  tusk_buf_dispose(&out);
}

static void test_chunked_basic(void) {
  check_chunked_ok("5\r\nhello\r\n0\r\n\r\n", "hello", 1024);
  check_chunked_ok("0\r\n\r\n", "", 1024);
  check_chunked_ok("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 1024);
  check_chunked_ok("A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
                   "01234567890123456789", 1024);
  check_chunked_ok("000005\r\nhello\r\n000\r\n\r\n", "hello", 1024);
  /* Extensions, with BWS before ';', are ignored. */
  check_chunked_ok("5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello", 1024);
  check_chunked_ok("5 ;a=\"q; x\"\r\nhello\r\n0\t;b\r\n\r\n", "hello", 1024);
  /* Trailers are parsed and dropped. */
  check_chunked_ok("5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-Other:\t1 2\r\n\r\n", "hello", 1024);
  /* Data may hold any byte, CRLF included. */
  check_chunked_ok("4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", 1024);

  /* Bytes after the final CRLF belong to the next request. */
  tusk_buf_t out;
  tusk_buf_init(&out);
  size_t used = 0;
  const char *in = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
  CHECK_EQ(dechunk(in, strlen(in), 0, &used, &out), 0);
  CHECK_EQ(used, strlen("3\r\nabc\r\n0\r\n\r\n"));
  CHECK_EQ(out.len, 3);

  /* Once done, more input is not consumed. */
  tusk_h1_chunked_t d;
  tusk_h1_chunked_init(&d, 0);
  tusk_buf_reset(&out);
  CHECK_EQ(tusk_h1_chunked_feed(&d, "0\r\n\r\n", 5, &used, &out), 0);
  CHECK_EQ(tusk_h1_chunked_feed(&d, "1\r\nx", 4, &used, &out), 0);
  CHECK_EQ(used, 0);

  /* Errors are sticky. */
  tusk_h1_chunked_init(&d, 0);
  CHECK_EQ(tusk_h1_chunked_feed(&d, "x", 1, &used, &out), TUSK_H1_E_BAD_REQUEST);
  CHECK_EQ(used, 0);
  CHECK_EQ(tusk_h1_chunked_feed(&d, "0\r\n\r\n", 5, &used, &out), TUSK_H1_E_BAD_REQUEST);
  tusk_buf_dispose(&out);
}

static void test_chunked_errors(void) {
  static const char *const bad[] = {
      "\r\n",                      /* no size */
      "g\r\n",                     /* not hex */
      "-1\r\n",                    /* sign */
      "+1\r\n",                    /* sign */
      "0x5\r\nhello\r\n0\r\n\r\n", /* prefix */
      " 5\r\n",                    /* leading space */
      "5 \r\nhello\r\n",           /* BWS without an extension */
      "5\n",                       /* bare LF */
      "5\rx",                      /* bare CR */
      "5;a\nhello",                /* bare LF after an extension */
      "5;a\x01\r\n",               /* control byte in an extension */
      "5\r\nhelloX\r\n",           /* no CRLF after data */
      "5\r\nhello\rX",             /* CR without LF after data */
      "5\r\nhello\n0\r\n\r\n",     /* bare LF after data */
      "0\r\n\n",                   /* bare LF at the end */
      "0\r\n\rX",                  /* CR without LF at the end */
      "0\r\n X: a\r\n\r\n",        /* obs-fold-like trailer */
      "0\r\nX : a\r\n\r\n",        /* space before the colon */
      "0\r\nX: a\nY: b\r\n\r\n",   /* bare LF in the trailers */
      "0\r\nX: a\rY: b\r\n\r\n",   /* bare CR in the trailers */
      "0\r\nX: a\x7f\r\n\r\n",     /* DEL in a trailer */
      "0\r\nXa\r\n\r\n",           /* trailer without a colon */
      "1000000000000000\r\n",      /* 16 digits: 2^60 */
      "0000000000000001\r\n",      /* 16 digits, even with leading zeros */
      "ffffffffffffffffffff\r\n",  /* overflow */
  };
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(bad); i++) {
    check_chunked_err(bad[i], TUSK_H1_E_BAD_REQUEST, 1024);
  }
  CHECK_EQ(tusk_h1_error_status(TUSK_H1_E_BAD_REQUEST), 400);

  /* 15 hex digits is the largest size: the decoder then waits for data. */
  check_chunked_err("fffffffffffffff\r\nabc", TUSK_AGAIN, 1024);
  check_chunked_err("FFFFFFFFFFFFFFF;x\r\n", TUSK_AGAIN, 1024);
}

static void test_chunked_limits(void) {
  /* Size line: exactly 4096 bytes before CRLF, then one past. */
  static char line[4200];
  memcpy(line, "5;", 2);
  memset(line + 2, 'e', 4094);
  strcpy(line + 4096, "\r\nhello\r\n0\r\n\r\n");
  check_chunked_ok(line, "hello", 0);
  memset(line + 2, 'e', 4095);
  strcpy(line + 4097, "\r\nhello\r\n0\r\n\r\n");
  check_chunked_err(line, TUSK_H1_E_BAD_REQUEST, 0);
  /* The same with the BWS form. */
  memset(line, ' ', 4200);
  line[0] = '5';
  memcpy(line + 4095, ";\r\nhello\r\n0\r\n\r\n", 16);
  check_chunked_ok(line, "hello", 0);
  memset(line, ' ', 4200);
  line[0] = '5';
  memcpy(line + 4096, ";\r\nhello\r\n0\r\n\r\n", 16);
  check_chunked_err(line, TUSK_H1_E_BAD_REQUEST, 0);

  /* Trailers: "X: 12\r\n" is 7 bytes; exactly max_trailer, then one past. */
  const char *in = "0\r\nX: 12\r\nY: 3\r\n\r\n";
  check_chunked_ok(in, "", 13);
  check_chunked_err(in, TUSK_H1_E_HEADERS_TOO_LARGE, 12);
  CHECK_EQ(tusk_h1_error_status(TUSK_H1_E_HEADERS_TOO_LARGE), 431);
  check_chunked_ok("0\r\n\r\n", "", 0);
  check_chunked_err("0\r\nX: 1\r\n\r\n", TUSK_H1_E_HEADERS_TOO_LARGE, 0);

  /* The 431 is sticky too. */
  tusk_h1_chunked_t d;
  tusk_buf_t out;
  size_t used;
  tusk_buf_init(&out);
  tusk_h1_chunked_init(&d, 1);
  CHECK_EQ(tusk_h1_chunked_feed(&d, "0\r\nXY", 6, &used, &out), TUSK_H1_E_HEADERS_TOO_LARGE);
  CHECK_EQ(used, 4);
  CHECK_EQ(tusk_h1_chunked_feed(&d, "\r\n", 2, &used, &out), TUSK_H1_E_HEADERS_TOO_LARGE);
  CHECK_EQ(used, 0);
  tusk_buf_dispose(&out);
}

/* Feeds the input split at every position (two pieces), then byte by byte,
 * and compares with the one-shot result. */
static void check_chunked_splits(const char *in, const char *want) {
  size_t len = strlen(in), wl = strlen(want);
  tusk_buf_t out;
  tusk_buf_init(&out);
  int bad = 0;
  for (size_t k = 0; k <= len && !bad; k++) {
    tusk_h1_chunked_t d;
    tusk_h1_chunked_init(&d, 256);
    tusk_buf_reset(&out);
    size_t used = 0;
    int rc = tusk_h1_chunked_feed(&d, in, k, &used, &out);
    if (k < len && (rc != TUSK_AGAIN || used != k)) bad = 1;
    if (k < len) rc = tusk_h1_chunked_feed(&d, in + k, len - k, &used, &out);
    if (rc != 0 || used != len - (k < len ? k : 0) || out.len != wl ||
        memcmp(out.data, want, wl) != 0) {
      bad = 1;
    }
    if (bad) fprintf(stderr, "split at %zu of %s failed\n", k, in);
  }
  CHECK(!bad);

  tusk_h1_chunked_t d;
  tusk_h1_chunked_init(&d, 256);
  tusk_buf_reset(&out);
  size_t used = 0;
  int rc = TUSK_AGAIN;
  for (size_t i = 0; i < len; i++) {
    char c = in[i];
    rc = tusk_h1_chunked_feed(&d, &c, 1, &used, &out);
    CHECK_EQ(used, 1);
    if (i + 1 < len) CHECK_EQ(rc, TUSK_AGAIN);
  }
  CHECK_EQ(rc, 0);
  CHECK(out.len == wl && memcmp(out.data, want, wl) == 0);
  tusk_buf_dispose(&out);
}

static void test_chunked_splits(void) {
  check_chunked_splits("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
  check_chunked_splits("1a;ext=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n1 ;x\r\n!\r\n"
                       "0\r\nTrailer: yes\r\n\r\n",
                       "abcdefghijklmnopqrstuvwxyz!");
}

int main(void) {
  test_simple_get();
  test_pipelined();
  test_incremental();
  test_targets();
  test_request_line_rejects();
  test_field_rejects();
  test_host();
  test_content_length();
  test_transfer_encoding();
  test_connection();
  test_limits();
  test_error_strings();
  test_chunked_basic();
  test_chunked_errors();
  test_chunked_limits();
  test_chunked_splits();
  TUSK_CHECK_REPORT();
}
