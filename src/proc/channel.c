#include "proc/channel.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"

static void put_u32(char *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get_u32(const char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

int tusk_chan_put(tusk_buf_t *out, uint8_t type, uint8_t flags, uint16_t seq, const void *payload,
                  size_t len) {
  if (len > TUSK_CHAN_MAX_FRAME) return TUSK_ELIMIT;
  if (tusk_buf_reserve(out, TUSK_CHAN_HDR + len) != 0) return TUSK_ENOMEM;
  tusk_chan_frame_t f = {(uint32_t)len, type, flags, seq};
  memcpy(out->data + out->len, &f, TUSK_CHAN_HDR);
  out->len += TUSK_CHAN_HDR;
  return tusk_buf_append(out, payload, len);
}

int tusk_chan_get(const char *in, size_t len, tusk_chan_frame_t *f, const char **payload) {
  if (len < TUSK_CHAN_HDR) return TUSK_AGAIN;
  memcpy(f, in, TUSK_CHAN_HDR);
  if (f->len > TUSK_CHAN_MAX_FRAME) return TUSK_EPROTO;
  if (len < TUSK_CHAN_HDR + (size_t)f->len) return TUSK_AGAIN;
  *payload = in + TUSK_CHAN_HDR;
  return (int)(TUSK_CHAN_HDR + f->len);
}

int tusk_chan_req_begin(tusk_chan_req_builder_t *b, tusk_buf_t *out, uint16_t seq) {
  b->out = out;
  b->start = out->len;
  b->nvars = 0;
  tusk_chan_frame_t f = {0, TUSK_CHAN_REQ, 0, seq};
  if (tusk_buf_append(out, &f, TUSK_CHAN_HDR) != 0) return TUSK_ENOMEM;
  b->nvars_at = out->len;
  uint32_t zero = 0;
  return tusk_buf_append(out, &zero, 4);
}

int tusk_chan_req_var(tusk_chan_req_builder_t *b, const char *k, size_t kl, const char *v, size_t vl) {
  if (kl > 0xffff) return TUSK_ELIMIT;
  if (tusk_buf_reserve(b->out, 8 + kl + vl) != 0) return TUSK_ENOMEM;
  char *p = b->out->data + b->out->len;
  uint16_t k16 = (uint16_t)kl;
  memcpy(p, &k16, 2);
  put_u32(p + 2, (uint32_t)vl);
  memcpy(p + 6, k, kl);
  p[6 + kl] = '\0';
  if (vl) memcpy(p + 7 + kl, v, vl);
  p[7 + kl + vl] = '\0';
  b->out->len += 8 + kl + vl;
  b->out->data[b->out->len] = '\0';
  b->nvars++;
  return 0;
}

int tusk_chan_req_var_str(tusk_chan_req_builder_t *b, const char *k, const char *v) {
  return tusk_chan_req_var(b, k, strlen(k), v, strlen(v));
}

int tusk_chan_req_end(tusk_chan_req_builder_t *b, const char *body, size_t bodylen) {
  if (tusk_buf_reserve(b->out, 4 + bodylen) != 0) return TUSK_ENOMEM;
  uint32_t bl = (uint32_t)bodylen;
  tusk_buf_append(b->out, &bl, 4);
  tusk_buf_append(b->out, body, bodylen);
  put_u32(b->out->data + b->nvars_at, b->nvars);
  size_t payload = b->out->len - b->start - TUSK_CHAN_HDR;
  if (payload > TUSK_CHAN_MAX_FRAME) return TUSK_ELIMIT;
  put_u32(b->out->data + b->start, (uint32_t)payload);
  return 0;
}

int tusk_chan_req_parse_all(const char *payload, size_t len, tusk_chan_var_t **vars, size_t *cap,
                            const char **body, size_t *bodylen) {
  if (len < 4) return TUSK_EPROTO;
  uint32_t n = get_u32(payload);
  /* Each variable takes at least 8 payload bytes: a bound on n. */
  if ((uint64_t)n * 8 > len) return TUSK_EPROTO;
  if (n > *cap) {
    size_t want = TUSK_MAX((size_t)n, (size_t)64);
    tusk_chan_var_t *p = realloc(*vars, want * sizeof *p);
    if (!p) return TUSK_ENOMEM;
    *vars = p;
    *cap = want;
  }
  return tusk_chan_req_parse(payload, len, *vars, *cap, body, bodylen);
}

int tusk_chan_req_parse(const char *payload, size_t len, tusk_chan_var_t *vars, size_t max,
                        const char **body, size_t *bodylen) {
  if (len < 4) return TUSK_EPROTO;
  uint32_t n = get_u32(payload);
  size_t off = 4;
  if (n > max) return TUSK_EPROTO;
  for (uint32_t i = 0; i < n; i++) {
    if (len - off < 6) return TUSK_EPROTO;
    uint16_t kl;
    memcpy(&kl, payload + off, 2);
    uint32_t vl = get_u32(payload + off + 2);
    off += 6;
    if (len - off < (size_t)kl + vl + 2) return TUSK_EPROTO;
    if (payload[off + kl] != '\0' || payload[off + kl + 1 + vl] != '\0') return TUSK_EPROTO;
    vars[i].key = payload + off;
    vars[i].klen = kl;
    vars[i].val = payload + off + kl + 1;
    vars[i].vlen = vl;
    off += (size_t)kl + vl + 2;
  }
  if (len - off < 4) return TUSK_EPROTO;
  uint32_t bl = get_u32(payload + off);
  off += 4;
  if (len - off < bl) return TUSK_EPROTO;
  *body = payload + off;
  *bodylen = bl;
  return (int)n;
}

void tusk_chan_head_parse(const char *payload, size_t len, tusk_chan_head_t *h) {
  h->status = 200;
  h->reason = h->lines = "";
  h->reason_len = h->lines_len = 0;
  if (!payload || len < 4) return;
  uint16_t st, rl;
  memcpy(&st, payload, 2);
  memcpy(&rl, payload + 2, 2);
  if (st) h->status = st;
  if ((size_t)rl + 4 > len) return;
  h->reason = payload + 4;
  h->reason_len = rl;
  h->lines = payload + 4 + rl;
  h->lines_len = len - 4 - rl;
}
