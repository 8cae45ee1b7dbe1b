/* Fuzz target for the other parsers of untrusted input: request path
 * normalisation, Range / conditional headers of static files, and the
 * channel's REQ payload parser. The first byte picks the parser. */
#undef NDEBUG /* the replay under CTest must check invariants in every build type */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/common.h"
#include "http/static.h"
#include "proc/channel.h"

static void check_normalize(const char *in, size_t len) {
  char out[PATH_MAX];
  int n = tusk_path_normalize(in, len, out, sizeof out);
  if (n < 0) {
    assert(n == -400 || n == -414);
    return;
  }
  assert((size_t)n < sizeof out && out[n] == '\0' && strlen(out) == (size_t)n);
  assert(out[0] == '/');
  /* No segment may be "." or "..", and no empty segment but a final one. */
  for (const char *p = out; *p; p++) {
    if (*p != '/') continue;
    const char *s = p + 1;
    const char *e = strchr(s, '/');
    size_t sl = e ? (size_t)(e - s) : strlen(s);
    assert(!(sl == 1 && s[0] == '.'));
    assert(!(sl == 2 && s[0] == '.' && s[1] == '.'));
    if (e) assert(sl > 0 || p == out);
  }
  /* Normalising again changes nothing (it is idempotent on '%'-free output). */
  if (!memchr(out, '%', (size_t)n)) {
    char again[PATH_MAX];
    int m = tusk_path_normalize(out, (size_t)n, again, sizeof again);
    assert(m == n && memcmp(again, out, (size_t)n) == 0);
  }
}

static void check_static(const uint8_t *d, size_t len) {
  if (len < 9) return;
  struct stat st;
  memset(&st, 0, sizeof st);
  uint32_t size;
  memcpy(&size, d, 4);
  st.st_size = size % 100000;
  st.st_mtime = 1700000000;
  uint8_t which = d[4];
  const char *h = (const char *)d + 5;
  size_t hl = len - 5;
  tusk_static_req_t q;
  memset(&q, 0, sizeof q);
  if (which & 1) q.range = h, q.range_len = hl;
  if (which & 2) q.if_none_match = h, q.if_none_match_len = hl;
  if (which & 4) q.if_modified_since = h, q.if_modified_since_len = hl;
  if (which & 8) q.if_range = h, q.if_range_len = hl;
  tusk_buf_t head;
  tusk_buf_init(&head);
  off_t off;
  size_t n;
  int status = tusk_static_prepare(&st, "/x/file.txt", &q, (which & 16) ? "public" : NULL, &head, &off, &n);
  assert(status == 200 || status == 206 || status == 304 || status == 416);
  assert(off >= 0 && (off_t)n <= st.st_size && off + (off_t)n <= st.st_size);
  if (status == 200) assert(off == 0 && (off_t)n == st.st_size);
  if (status == 206) assert(n > 0);
  assert(memchr(head.data, '\n', head.len) != NULL);
  tusk_buf_dispose(&head);
}

static void check_channel(const uint8_t *d, size_t len) {
  tusk_chan_var_t *vars = NULL;
  size_t cap = 0;
  const char *body;
  size_t bodylen;
  int n = tusk_chan_req_parse_all((const char *)d, len, &vars, &cap, &body, &bodylen);
  if (n < 0) {
    free(vars);
    return;
  }
  assert((size_t)n <= cap);
  for (int i = 0; i < n; i++) {
    assert(vars[i].key >= (const char *)d && vars[i].val + vars[i].vlen <= (const char *)d + len);
    assert(vars[i].key[vars[i].klen] == '\0' && vars[i].val[vars[i].vlen] == '\0');
  }
  assert(body >= (const char *)d && body + bodylen <= (const char *)d + len);
  free(vars);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  switch (data[0] % 3) {
    case 0:
      check_normalize((const char *)data + 1, size - 1);
      break;
    case 1:
      check_static(data + 1, size - 1);
      break;
    default:
      check_channel(data + 1, size - 1);
      break;
  }
  return 0;
}
