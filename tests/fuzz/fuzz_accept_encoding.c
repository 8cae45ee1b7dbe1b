/* Fuzz target for response compression: the Accept-Encoding parser, the
 * Content-Type filter, and the encoders' streaming (arbitrary data cut
 * into arbitrary writes and flushes must decode back to itself). The first
 * byte picks the check; for negotiation its high bits are the allowed
 * mask. */
#undef NDEBUG /* the replay under CTest must check invariants in every build type */
#include <assert.h>
#include <brotli/decode.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "core/buf.h"
#include "core/common.h"
#include "http/compress.h"

static tusk_enc_t negotiate(const char *s, size_t len, unsigned allowed) {
  /* An exact-size copy: sanitizers catch any read past len. */
  char *copy = malloc(len ? len : 1);
  assert(copy != NULL);
  if (len) memcpy(copy, s, len);
  tusk_enc_t e = tusk_compress_negotiate(copy, len, allowed);
  free(copy);
  return e;
}

static void check_negotiate(const char *s, size_t len, unsigned allowed) {
  tusk_enc_t e = negotiate(s, len, allowed);
  assert(e == TUSK_ENC_NONE || e == TUSK_ENC_GZIP || e == TUSK_ENC_BR || e == TUSK_ENC_ZSTD);
  assert(e == TUSK_ENC_NONE || (allowed & (unsigned)e));
  /* The winner alone is still acceptable; a subset of a NONE is NONE. */
  if (e != TUSK_ENC_NONE) assert(negotiate(s, len, (unsigned)e) == e);
  for (unsigned sub = 0; sub <= TUSK_ENC_ALL; sub++) {
    if ((sub & allowed) != sub) continue;
    tusk_enc_t f = negotiate(s, len, sub);
    if (e == TUSK_ENC_NONE) assert(f == TUSK_ENC_NONE);
    if (e != TUSK_ENC_NONE && (sub & (unsigned)e)) assert(f == e);
  }
  /* Case, and empty elements around the list, change nothing. */
  char *t = malloc(len + 4);
  assert(t != NULL);
  for (size_t i = 0; i < len; i++) t[i + 2] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 32) : s[i];
  memcpy(t, ", ", 2);
  memcpy(t + len + 2, " ,", 2);
  assert(negotiate(t + 2, len, allowed) == e);
  assert(negotiate(t, len + 4, allowed) == e || memchr(s, '"', len) != NULL);
  free(t);
}

/* Decodes a stream fed in pieces; keeps state like a client does. */
typedef struct {
  tusk_enc_t e;
  z_stream z;
  BrotliDecoderState *br;
  ZSTD_DStream *zs;
  tusk_buf_t out;
} dec_t;

static void dec_feed(dec_t *d, const char *in, size_t n) {
  unsigned char tmp[1024];
  if (d->e == TUSK_ENC_GZIP) {
    d->z.next_in = (Bytef *)in;
    d->z.avail_in = (uInt)n;
    for (;;) {
      d->z.next_out = tmp;
      d->z.avail_out = sizeof tmp;
      int rc = inflate(&d->z, Z_SYNC_FLUSH);
      tusk_buf_append(&d->out, tmp, sizeof tmp - d->z.avail_out);
      assert(rc == Z_OK || rc == Z_STREAM_END || (rc == Z_BUF_ERROR && d->z.avail_in == 0));
      if (rc != Z_OK || (d->z.avail_in == 0 && d->z.avail_out > 0)) break;
    }
    assert(d->z.avail_in == 0);
  } else if (d->e == TUSK_ENC_BR) {
    size_t avail_in = n;
    const uint8_t *next_in = (const uint8_t *)in;
    for (;;) {
      size_t avail_out = sizeof tmp;
      uint8_t *next_out = tmp;
      BrotliDecoderResult r = BrotliDecoderDecompressStream(d->br, &avail_in, &next_in, &avail_out, &next_out, NULL);
      tusk_buf_append(&d->out, tmp, sizeof tmp - avail_out);
      assert(r != BROTLI_DECODER_RESULT_ERROR);
      if (r == BROTLI_DECODER_RESULT_SUCCESS) break;
      if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT && !BrotliDecoderHasMoreOutput(d->br)) break;
    }
    assert(avail_in == 0);
  } else {
    ZSTD_inBuffer ib = {in, n, 0};
    for (;;) {
      ZSTD_outBuffer ob = {tmp, sizeof tmp, 0};
      size_t r = ZSTD_decompressStream(d->zs, &ob, &ib);
      assert(!ZSTD_isError(r));
      tusk_buf_append(&d->out, tmp, ob.pos);
      if (r == 0 || (ib.pos == ib.size && ob.pos < ob.size)) break;
    }
    assert(ib.pos == ib.size);
  }
}

/* d[0]: codec and level; then records of [len byte, mode byte, data]. */
static void check_stream(const uint8_t *d, size_t len) {
  if (len < 1) return;
  static const tusk_enc_t encs[] = {TUSK_ENC_GZIP, TUSK_ENC_BR, TUSK_ENC_ZSTD};
  tusk_enc_t e = encs[d[0] % 3];
  int level = (d[0] / 3) % 8 == 0 ? -1 : (d[0] / 3) % 8; /* fast levels only */
  d++, len--;
  tusk_encoder_t *enc = tusk_encoder_create(e, level);
  assert(enc != NULL);
  dec_t dec;
  memset(&dec, 0, sizeof dec);
  dec.e = e;
  tusk_buf_init(&dec.out);
  if (e == TUSK_ENC_GZIP) assert(inflateInit2(&dec.z, 15 + 16) == Z_OK);
  if (e == TUSK_ENC_BR) assert((dec.br = BrotliDecoderCreateInstance(NULL, NULL, NULL)) != NULL);
  if (e == TUSK_ENC_ZSTD) assert((dec.zs = ZSTD_createDStream()) != NULL);
  tusk_buf_t in, out;
  tusk_buf_init(&in);
  tusk_buf_init(&out);
  size_t fed = 0;
  while (len >= 2) {
    size_t n = TUSK_MIN((size_t)d[0], len - 2);
    int mode = d[1] % 2; /* MORE or FLUSH */
    const uint8_t *chunk = d + 2;
    assert(tusk_encoder_write(enc, n ? chunk : NULL, n, mode, &out) == 0);
    tusk_buf_append(&in, chunk, n);
    d += 2 + n, len -= 2 + n;
    if (mode == TUSK_ENC_FLUSH) {
      dec_feed(&dec, out.data + fed, out.len - fed);
      fed = out.len;
      assert(dec.out.len == in.len && (in.len == 0 || memcmp(dec.out.data, in.data, in.len) == 0));
    }
  }
  assert(tusk_encoder_write(enc, NULL, 0, TUSK_ENC_FINISH, &out) == 0);
  dec_feed(&dec, out.data + fed, out.len - fed);
  assert(dec.out.len == in.len && (in.len == 0 || memcmp(dec.out.data, in.data, in.len) == 0));
  assert(tusk_encoder_write(enc, NULL, 0, TUSK_ENC_FLUSH, &out) < 0);
  tusk_encoder_destroy(enc);
  if (e == TUSK_ENC_GZIP) inflateEnd(&dec.z);
  if (e == TUSK_ENC_BR) BrotliDecoderDestroyInstance(dec.br);
  if (e == TUSK_ENC_ZSTD) ZSTD_freeDStream(dec.zs);
  tusk_buf_dispose(&dec.out);
  tusk_buf_dispose(&in);
  tusk_buf_dispose(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *s = (const char *)data + 1;
  switch (data[0] % 3) {
    case 0:
      check_negotiate(s, size - 1, (unsigned)(data[0] / 3) & 0x3f);
      break;
    case 1: {
      int r = tusk_compress_type_ok(s, size - 1);
      assert(r == 0 || r == 1);
      break;
    }
    default:
      check_stream(data + 1, size - 1);
      break;
  }
  return 0;
}
