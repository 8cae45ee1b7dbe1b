/* Fuzz target for the message framing of `tusk run` services
 * (src/net/framing.c). The first byte picks the framing and the message
 * bound; the rest is a client's byte stream, cut into messages. Every
 * message must lie inside the input and respect the bound, and encoding it
 * again must parse back to the same message. */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"
#include "net/framing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  tusk_framing_t kind = (tusk_framing_t)(data[0] % 3);
  size_t max = (size_t)(data[0] >> 2) * 16 + 1;
  /* An exact-size copy: sanitizers catch any read past the end. */
  size_t len = size - 1;
  char *in = malloc(len ? len : 1);
  assert(in);
  if (len) memcpy(in, data + 1, len);
  size_t off = 0;
  while (off < len) {
    const char *msg;
    size_t ml;
    int n = tusk_framing_next(kind, in + off, len - off, max, &msg, &ml);
    if (n == TUSK_AGAIN || n == TUSK_ELIMIT || n == TUSK_EPROTO) break;
    assert(n > 0 && (size_t)n <= len - off);
    assert(msg >= in + off && msg + ml <= in + off + n);
    if (kind != TUSK_FRAMING_RAW) assert(ml <= max);
    if (kind == TUSK_FRAMING_TEXT) assert(memchr(msg, '\n', ml) == NULL);
    if (!(kind == TUSK_FRAMING_TEXT && ml > 0 && msg[ml - 1] == '\r')) {
      tusk_buf_t b;
      tusk_buf_init(&b);
      assert(tusk_framing_encode(kind, msg, ml, &b) == 0);
      const char *m2;
      size_t l2;
      int n2 = tusk_framing_next(kind, b.data, b.len, max, &m2, &l2);
      assert(n2 == (int)b.len && l2 == ml && (ml == 0 || memcmp(m2, msg, ml) == 0));
      tusk_buf_dispose(&b);
    }
    off += (size_t)n;
  }
  free(in);
  return 0;
}
