#include "net/framing.h"

#include <stdint.h>
#include <string.h>

#include "core/common.h"

int tusk_framing_next(tusk_framing_t kind, const char *in, size_t len, size_t max, const char **msg,
                      size_t *msglen) {
  if (len == 0) return TUSK_AGAIN;
  switch (kind) {
    case TUSK_FRAMING_TEXT: {
      const char *nl = memchr(in, '\n', TUSK_MIN(len, max + 2));
      if (!nl) return len > max + 1 ? TUSK_ELIMIT : TUSK_AGAIN;
      size_t n = (size_t)(nl - in);
      if (n > 0 && in[n - 1] == '\r') n--;
      if (n > max) return TUSK_ELIMIT;
      *msg = in;
      *msglen = n;
      return (int)(nl - in) + 1;
    }
    case TUSK_FRAMING_FRAME: {
      if (len < 4) return TUSK_AGAIN;
      const unsigned char *u = (const unsigned char *)in;
      uint32_t total = (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
      if (total < 4) return TUSK_EPROTO;
      if (total - 4 > max || total > (uint32_t)INT32_MAX) return TUSK_ELIMIT;
      if (len < total) return TUSK_AGAIN;
      *msg = in + 4;
      *msglen = total - 4;
      return (int)total;
    }
    default:
      *msg = in;
      *msglen = TUSK_MIN(len, (size_t)INT32_MAX);
      return (int)*msglen;
  }
}

int tusk_framing_encode(tusk_framing_t kind, const char *data, size_t len, tusk_buf_t *out) {
  switch (kind) {
    case TUSK_FRAMING_TEXT:
      if (tusk_buf_append(out, data, len) != 0) return TUSK_ENOMEM;
      return tusk_buf_append(out, "\n", 1) != 0 ? TUSK_ENOMEM : 0;
    case TUSK_FRAMING_FRAME: {
      if (len > UINT32_MAX - 4) return TUSK_ELIMIT;
      uint32_t t = (uint32_t)len + 4;
      unsigned char h[4] = {(unsigned char)(t >> 24), (unsigned char)(t >> 16), (unsigned char)(t >> 8),
                            (unsigned char)t};
      if (tusk_buf_append(out, h, 4) != 0) return TUSK_ENOMEM;
      return tusk_buf_append(out, data, len) != 0 ? TUSK_ENOMEM : 0;
    }
    default:
      return tusk_buf_append(out, data, len) != 0 ? TUSK_ENOMEM : 0;
  }
}
