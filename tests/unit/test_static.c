/* Unit tests for request path normalisation, static file conditionals and
 * ranges, and the channel framing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/common.h"
#include "http/static.h"
#include "proc/channel.h"

#include "check.h"

static void norm(const char *in, const char *want) {
  char out[256];
  int n = tusk_path_normalize(in, strlen(in), out, sizeof out);
  if (want == NULL) {
    CHECK(n == -400);
    if (n != -400) fprintf(stderr, "  '%s' -> '%s' (wanted an error)\n", in, n >= 0 ? out : "?");
  } else {
    CHECK(n >= 0 && strcmp(out, want) == 0);
    if (n < 0 || strcmp(out, want) != 0) fprintf(stderr, "  '%s' -> '%s' (wanted '%s')\n", in, n >= 0 ? out : "error", want);
  }
}

static int prepare(off_t size, const char *range, const char *inm, const char *ims, off_t *off, size_t *len,
                   tusk_buf_t *head) {
  struct stat st;
  memset(&st, 0, sizeof st);
  st.st_size = size;
  st.st_mtime = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */
  tusk_static_req_t q;
  memset(&q, 0, sizeof q);
  if (range) q.range = range, q.range_len = strlen(range);
  if (inm) q.if_none_match = inm, q.if_none_match_len = strlen(inm);
  if (ims) q.if_modified_since = ims, q.if_modified_since_len = strlen(ims);
  tusk_buf_reset(head);
  return tusk_static_prepare(&st, "/r/a.css", &q, "public, max-age=60", head, off, len);
}

int main(void) {
  norm("/", "/");
  norm("/a/b", "/a/b");
  norm("/a/b/", "/a/b/");
  norm("/a//b", "/a/b");
  norm("/a/./b", "/a/b");
  norm("/a/b/..", "/a/");
  norm("/a/b/../c", "/a/c");
  norm("/a/%62", "/a/b");
  norm("/a%2fb", "/a/b");
  norm("/%2e%2e/x", NULL);
  norm("/..", NULL);
  norm("/a/../..", NULL);
  norm("/a/..%2f..%2fetc/passwd", NULL);
  norm("/a%00b", NULL);
  norm("/a%zz", NULL);
  norm("/a%2", NULL);
  norm("relative", NULL);
  norm("/%252e%252e/x", "/%2e%2e/x"); /* decoded once only: a literal name */
  {
    char out[8];
    CHECK(tusk_path_normalize("/aaaaaaaaaaaa", 13, out, sizeof out) == -414);
  }

  tusk_buf_t head;
  tusk_buf_init(&head);
  off_t off;
  size_t len;
  CHECK(prepare(1000, NULL, NULL, NULL, &off, &len, &head) == 200 && off == 0 && len == 1000);
  CHECK(strstr(head.data, "ETag: \"6553f100-3e8\"") && strstr(head.data, "Cache-Control: public, max-age=60"));
  CHECK(strstr(head.data, "Content-Type: text/css"));
  CHECK(strstr(head.data, "Last-Modified: Tue, 14 Nov 2023 22:13:20 GMT"));
  CHECK(prepare(1000, "bytes=0-99", NULL, NULL, &off, &len, &head) == 206 && off == 0 && len == 100);
  CHECK(strstr(head.data, "Content-Range: bytes 0-99/1000"));
  CHECK(prepare(1000, "bytes=-10", NULL, NULL, &off, &len, &head) == 206 && off == 990 && len == 10);
  CHECK(prepare(1000, "bytes=990-", NULL, NULL, &off, &len, &head) == 206 && off == 990 && len == 10);
  CHECK(prepare(1000, "bytes=990-5000", NULL, NULL, &off, &len, &head) == 206 && len == 10);
  CHECK(prepare(1000, "bytes=1000-", NULL, NULL, &off, &len, &head) == 416 && len == 0);
  CHECK(strstr(head.data, "Content-Range: bytes */1000"));
  /* Positions past 2^63 (found by fuzzing: once a negative offset). */
  CHECK(prepare(1000, "bytes=10134836310148150501-", NULL, NULL, &off, &len, &head) == 416 && off == 0);
  CHECK(prepare(1000, "bytes=-10134836310148150501", NULL, NULL, &off, &len, &head) == 206 && off == 0 &&
        len == 1000);
  CHECK(prepare(1000, "bytes=5-1", NULL, NULL, &off, &len, &head) == 200);
  CHECK(prepare(1000, "items=0-1", NULL, NULL, &off, &len, &head) == 200);
  CHECK(prepare(0, "bytes=-5", NULL, NULL, &off, &len, &head) == 416);
  CHECK(prepare(1000, NULL, "\"6553f100-3e8\"", NULL, &off, &len, &head) == 304 && len == 0);
  CHECK(prepare(1000, NULL, "W/\"6553f100-3e8\"", NULL, &off, &len, &head) == 304);
  CHECK(prepare(1000, NULL, "\"other\", \"6553f100-3e8\"", NULL, &off, &len, &head) == 304);
  CHECK(prepare(1000, NULL, "*", NULL, &off, &len, &head) == 304);
  CHECK(prepare(1000, NULL, "\"other\"", NULL, &off, &len, &head) == 200);
  CHECK(prepare(1000, NULL, NULL, "Tue, 14 Nov 2023 22:13:20 GMT", &off, &len, &head) == 304);
  CHECK(prepare(1000, NULL, NULL, "Tue, 14 Nov 2023 22:13:19 GMT", &off, &len, &head) == 200);
  CHECK(prepare(1000, NULL, NULL, "garbage", &off, &len, &head) == 200);
  /* If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2). */
  CHECK(prepare(1000, NULL, "\"other\"", "Tue, 14 Nov 2023 22:13:20 GMT", &off, &len, &head) == 200);
  tusk_buf_dispose(&head);

  /* Channel: a REQ frame round-trips. */
  tusk_buf_t f;
  tusk_buf_init(&f);
  tusk_chan_req_builder_t b;
  CHECK(tusk_chan_req_begin(&b, &f, 7) == 0);
  tusk_chan_req_var_str(&b, "REQUEST_METHOD", "POST");
  tusk_chan_req_var(&b, "\x01X-A", 4, "v", 1);
  CHECK(tusk_chan_req_end(&b, "body!", 5) == 0);
  tusk_chan_frame_t fr;
  const char *payload;
  int n = tusk_chan_get(f.data, f.len, &fr, &payload);
  CHECK(n == (int)f.len && fr.type == TUSK_CHAN_REQ && fr.seq == 7);
  CHECK(tusk_chan_get(f.data, f.len - 1, &fr, &payload) == TUSK_AGAIN);
  tusk_chan_var_t vars[8];
  const char *body;
  size_t bodylen;
  CHECK(tusk_chan_req_parse(payload, fr.len, vars, 8, &body, &bodylen) == 2);
  CHECK(vars[0].klen == 14 && !strcmp(vars[0].val, "POST") && vars[1].key[0] == '\x01');
  CHECK(bodylen == 5 && !memcmp(body, "body!", 5));
  CHECK(tusk_chan_req_parse(payload, fr.len - 1, vars, 8, &body, &bodylen) < 0);
  CHECK(tusk_chan_req_parse(payload, fr.len, vars, 1, &body, &bodylen) < 0);
  /* The growing parser takes any count the frame really holds... */
  tusk_chan_var_t *all = NULL;
  size_t cap = 0;
  CHECK(tusk_chan_req_parse_all(payload, fr.len, &all, &cap, &body, &bodylen) == 2 && cap >= 2);
  /* ...but not a count the payload cannot hold (no huge allocation). */
  char lie[16] = {0};
  uint32_t big = 0x10000000;
  memcpy(lie, &big, 4);
  CHECK(tusk_chan_req_parse_all(lie, sizeof lie, &all, &cap, &body, &bodylen) < 0 && cap < 1000);
  free(all);
  tusk_buf_dispose(&f);

  /* Decimal formatting used on the response path instead of printf. */
  char num[21];
  CHECK(tusk_u64_str(0, num) == 1 && strcmp(num, "0") == 0);
  CHECK(tusk_u64_str(65535, num) == 5 && strcmp(num, "65535") == 0);
  CHECK(tusk_u64_str(18446744073709551615ull, num) == 20 && strcmp(num, "18446744073709551615") == 0);
  tusk_buf_t d;
  tusk_buf_init(&d);
  tusk_buf_append(&d, "n=", 2);
  tusk_buf_append_u64(&d, 1234567);
  CHECK(d.len == 9 && strcmp(d.data, "n=1234567") == 0);
  tusk_buf_dispose(&d);

  TUSK_CHECK_REPORT();
}
