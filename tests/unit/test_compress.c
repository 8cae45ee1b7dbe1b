/* Unit tests for response compression: Accept-Encoding negotiation, the
 * Content-Type filter, and the encoders, whose output is decoded with the
 * real zlib, brotli and zstd decoders, after every flush as well as at the
 * end. */
#include <brotli/decode.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "core/buf.h"
#include "core/common.h"
#include "http/compress.h"

#include "check.h"

#define ALL TUSK_ENC_ALL
#define GZ TUSK_ENC_GZIP
#define BR TUSK_ENC_BR
#define ZS TUSK_ENC_ZSTD
#define NONE TUSK_ENC_NONE

static void neg(const char *accept, unsigned allowed, tusk_enc_t want) {
  /* An exact-size copy, so a sanitizer sees any read past len. */
  size_t n = strlen(accept);
  char *copy = malloc(n ? n : 1);
  memcpy(copy, accept, n);
  tusk_enc_t got = tusk_compress_negotiate(copy, n, allowed);
  free(copy);
  CHECK(got == want);
  if (got != want) fprintf(stderr, "  '%s' allowed %u -> %d, wanted %d\n", accept, allowed, got, want);
}

static void test_negotiate(void) {
  CHECK(tusk_compress_negotiate(NULL, 5, ALL) == NONE);
  CHECK(tusk_compress_negotiate("gzip", 0, ALL) == NONE);
  /* Plain lists: our preference decides between equal q values. */
  neg("gzip", ALL, GZ);
  neg("gzip, deflate", ALL, GZ);
  neg("gzip, deflate, br", ALL, BR);
  neg("gzip, deflate, br, zstd", ALL, BR);
  neg("zstd, gzip", ALL, ZS);
  neg("gzip, deflate, br, zstd", GZ | ZS, ZS);
  neg("gzip, deflate, br, zstd", GZ, GZ);
  neg("br", GZ | ZS, NONE);
  neg("deflate", ALL, NONE);
  neg("gzip, br", 0, NONE);
  neg("gzip, br", 8 | 16, NONE); /* unknown mask bits are ignored */
  neg("gzip", GZ | 8, GZ);
  /* q-values. */
  neg("gzip;q=1.0, br;q=0.5", ALL, GZ);
  neg("gzip;q=0.5, br;q=0.8, zstd;q=0.9", ALL, ZS);
  neg("gzip;q=0.5, br;q=0.5, zstd;q=0.5", ALL, BR);
  neg("gzip;q=0.5, br;q=0.5, zstd;q=0.5", GZ | ZS, ZS);
  neg("gzip;q=0.001", ALL, GZ);
  neg("gzip;q=0.001, br;q=0.002", ALL, BR);
  neg("gzip;q=1, br;q=1.000", ALL, BR);
  neg("br;q=0.999, gzip", ALL, GZ);
  neg("gzip;q=0.", ALL, NONE); /* "0." is a valid qvalue: zero */
  neg("gzip;q=1., br;q=0.9", ALL, GZ);
  /* q=0 excludes. */
  neg("gzip;q=0", ALL, NONE);
  neg("br;q=0, gzip", ALL, GZ);
  neg("br;q=0.000, gzip;q=0.1", ALL, GZ);
  neg("br;q=0, zstd;q=0, gzip;q=0", ALL, NONE);
  /* "*" covers what is not listed by name. */
  neg("*", ALL, BR);
  neg("*", GZ, GZ);
  neg("*", GZ | ZS, ZS);
  neg("*;q=0", ALL, NONE);
  neg("br;q=0, *", ALL, ZS);
  neg("br;q=0, zstd;q=0, *", ALL, GZ);
  neg("*;q=0, gzip", ALL, GZ);
  neg("gzip;q=0.5, *;q=0.6", ALL, BR);
  neg("gzip;q=0.5, *;q=0.6", GZ, GZ); /* gzip is named: the star does not apply */
  neg("gzip;q=0.7, *;q=0.6", ALL, GZ);
  neg("*;q=0.5, br;q=0.4", ALL, ZS);
  neg("*;q=0.5, *;q=0.1, gzip;q=0.2", ALL, GZ); /* the lower star wins */
  /* identity. */
  neg("identity", ALL, NONE);
  neg("identity;q=0", ALL, NONE);
  neg("identity;q=0, gzip", ALL, GZ);
  neg("identity;q=0, *;q=0", ALL, NONE);
  neg("identity, gzip", ALL, GZ);          /* a tie goes to compression */
  neg("identity, gzip;q=0.5", ALL, NONE);  /* the client prefers no coding */
  neg("identity;q=0.4, gzip;q=0.5", ALL, GZ);
  neg("gzip;q=0.5, *", GZ, GZ); /* "*" is no preference for identity */
  /* Case, whitespace, empty elements. */
  neg("GZIP", ALL, GZ);
  neg("Br, GZip", ALL, BR);
  neg("ZSTD;Q=0.9, gzip;q=0.8", ALL, ZS);
  neg("x-gzip", ALL, GZ);
  neg("X-GZIP;q=0.5, br;q=0.4", ALL, GZ);
  neg("gzip;q=0, x-gzip", ALL, NONE); /* the lower q of the two */
  neg("  gzip  ,  br  ", ALL, BR);
  neg("\tgzip\t;\tq=0.5\t,\tzstd ; q=0.4", ALL, GZ);
  neg("gzip ; q=0.5 , br ; q=0.6", ALL, BR);
  neg(",,, ,gzip,, ,", ALL, GZ);
  neg(",", ALL, NONE);
  neg("   ", ALL, NONE);
  neg(" , , ", ALL, NONE);
  /* Malformed elements are ignored, the rest still counts. */
  neg("gzip;q=1.5", ALL, NONE);
  neg("gzip;q=1.5, br;q=0.1", ALL, BR);
  neg("gzip;q=2", ALL, NONE);
  neg("gzip;q=1.001", ALL, NONE);
  neg("gzip;q=0.0001", ALL, NONE);
  neg("gzip;q=0.0001, zstd", ALL, ZS);
  neg("gzip;q=.5", ALL, NONE);
  neg("gzip;q=-1", ALL, NONE);
  neg("gzip;q=0.5x", ALL, NONE);
  neg("gzip;q=0.5 x, br", ALL, BR);
  neg("gzip;q=", ALL, NONE);
  neg("gzip;q", ALL, NONE);
  neg("gzip;=1", ALL, NONE);
  neg("gzip;", ALL, NONE);
  neg("gzip;q=0.5;q=1", ALL, NONE); /* a repeated q */
  neg("gzip;q = 0.5", ALL, NONE);
  neg("gzip;q=\"0.5\"", ALL, NONE);
  neg("gzip br", ALL, NONE);
  neg("gzip br, zstd", ALL, ZS);
  neg("\"gzip\", br", ALL, BR);
  neg("gz@ip, gzip;q=0.2", ALL, GZ);
  neg("gzi", ALL, NONE);
  neg("gzipp, brr, zstdd, **", ALL, NONE);
  neg("gzip;q=0.5;level=9", ALL, GZ); /* other parameters are ignored */
  neg("gzip;foo=\"a,b;q=0\", br;q=0.1", ALL, GZ);
  neg("gzip;foo=\"unterminated, br", ALL, NONE);
  neg("gzip;foo=\"esc\\\"aped\";q=0.9, br;q=0.8", ALL, GZ);
  neg("gzip;foo=", ALL, NONE);
  neg("gzip\x80, br;q=0.3", ALL, BR);
  neg("\x01\x02\xff", ALL, NONE);
  /* A NUL ends nothing: the length does. */
  CHECK(tusk_compress_negotiate("br\0, gzip", 9, ALL) == GZ);
  CHECK(tusk_compress_negotiate("gzip, br", 4, ALL) == GZ);
  CHECK(tusk_compress_negotiate("gzip;q=0.5", 10, ALL) == GZ);
  CHECK(tusk_compress_negotiate("gzip;q=0.5", 8, ALL) == NONE); /* "gzip;q=0" */
  /* PHP output (compressed as sent): ties go to zstd, then br, then gzip. */
  CHECK(tusk_compress_negotiate_live("gzip, deflate, br, zstd", 23, ALL) == ZS);
  CHECK(tusk_compress_negotiate("gzip, deflate, br, zstd", 23, ALL) == BR);
  CHECK(tusk_compress_negotiate_live("gzip, br", 8, ALL) == BR);
  CHECK(tusk_compress_negotiate_live("gzip, br;q=0.9, zstd;q=0.5", 26, ALL) == GZ);
  CHECK(tusk_compress_negotiate_live("zstd, br", 8, ALL & ~(unsigned)ZS) == BR);
  CHECK(tusk_compress_negotiate_live("zstd;q=0, *", 11, ALL) == BR);
  CHECK(tusk_compress_negotiate_live(NULL, 3, ALL) == NONE);
  /* A long value is linear and harmless. */
  tusk_buf_t big;
  tusk_buf_init(&big);
  for (int i = 0; i < 20000; i++) tusk_buf_append_str(&big, "foo;q=0.1;a=\"b\", ");
  tusk_buf_append_str(&big, "zstd;q=0.2");
  CHECK(tusk_compress_negotiate(big.data, big.len, ALL) == ZS);
  tusk_buf_dispose(&big);
}

static void test_names(void) {
  CHECK(strcmp(tusk_compress_name(GZ), "gzip") == 0);
  CHECK(strcmp(tusk_compress_name(BR), "br") == 0);
  CHECK(strcmp(tusk_compress_name(ZS), "zstd") == 0);
  CHECK(strcmp(tusk_compress_name(NONE), "identity") == 0);
  CHECK(tusk_compress_name((tusk_enc_t)3) == NULL);
  CHECK(strcmp(tusk_compress_suffix(GZ), ".gz") == 0);
  CHECK(strcmp(tusk_compress_suffix(BR), ".br") == 0);
  CHECK(strcmp(tusk_compress_suffix(ZS), ".zst") == 0);
  CHECK(strcmp(tusk_compress_suffix(NONE), "") == 0);
  CHECK(tusk_compress_suffix((tusk_enc_t)8) == NULL);
}

static int type_ok(const char *ct) {
  size_t n = strlen(ct);
  char *copy = malloc(n ? n : 1);
  memcpy(copy, ct, n);
  int r = tusk_compress_type_ok(copy, n);
  free(copy);
  return r;
}

static void test_types(void) {
  static const char *yes[] = {
      "text/html",
      "text/html; charset=utf-8",
      "Text/HTML;Charset=UTF-8",
      "  text/css",
      "text/plain ; charset=us-ascii",
      "text/javascript",
      "text/csv",
      "text/markdown; charset=utf-8",
      "application/json",
      "APPLICATION/JSON; charset=utf-8",
      "application/javascript",
      "application/x-javascript",
      "application/ecmascript",
      "application/xml",
      "application/xhtml+xml",
      "application/rss+xml",
      "application/atom+xml",
      "application/ld+json",
      "application/problem+json",
      "application/vnd.api+json",
      "application/manifest+json",
      "application/x-ndjson",
      "application/yaml",
      "application/wasm",
      "application/vnd.ms-fontobject",
      "image/svg+xml",
      "image/SVG+XML; charset=utf-8",
      "image/x-icon",
      "image/vnd.microsoft.icon",
      "image/bmp",
      "font/ttf",
      "font/otf",
      "font/collection",
  };
  static const char *no[] = {
      "",
      " ",
      "text",
      "text/",
      "/html",
      "text/event-stream",
      "text /html",
      "image/png",
      "image/jpeg",
      "image/gif",
      "image/webp",
      "image/avif",
      "video/mp4",
      "audio/mpeg",
      "font/woff",
      "font/woff2",
      "application/zip",
      "application/gzip",
      "application/x-gzip",
      "application/zstd",
      "application/x-brotli",
      "application/pdf",
      "application/octet-stream",
      "application/epub+zip",
      "application/+json",
      "multipart/form-data; boundary=x",
      "application/jsonx",
      "application/json-seq-but-a-very-long-subtype-that-does-not-fit-our-buffer-at-all-xxxxxxxxx",
  };
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(yes); i++) {
    CHECK(type_ok(yes[i]) == 1);
    if (type_ok(yes[i]) != 1) fprintf(stderr, "  '%s' should be compressible\n", yes[i]);
  }
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(no); i++) {
    CHECK(type_ok(no[i]) == 0);
    if (type_ok(no[i]) != 0) fprintf(stderr, "  '%s' should not be compressible\n", no[i]);
  }
  CHECK(tusk_compress_type_ok(NULL, 10) == 0);
  CHECK(tusk_compress_type_ok("text/html", 0) == 0);
  CHECK(tusk_compress_type_ok("text/htmlXX", 9) == 1);
  CHECK(tusk_compress_type_ok("image/svg+xmlfoo", 13) == 1);
  CHECK(tusk_compress_type_ok("text/event-streamer", 17) == 0);
}

/* ---- Decoders: each keeps its state across calls, like a client. ------- */

typedef struct {
  tusk_enc_t e;
  z_stream z;
  BrotliDecoderState *br;
  ZSTD_DStream *zs;
  tusk_buf_t out;
  int ended;
} dec_t;

static void dec_init(dec_t *d, tusk_enc_t e) {
  memset(d, 0, sizeof *d);
  d->e = e;
  tusk_buf_init(&d->out);
  if (e == GZ) inflateInit2(&d->z, 15 + 16);
  if (e == BR) d->br = BrotliDecoderCreateInstance(NULL, NULL, NULL);
  if (e == ZS) d->zs = ZSTD_createDStream();
}

static void dec_dispose(dec_t *d) {
  if (d->e == GZ) inflateEnd(&d->z);
  if (d->e == BR) BrotliDecoderDestroyInstance(d->br);
  if (d->e == ZS) ZSTD_freeDStream(d->zs);
  tusk_buf_dispose(&d->out);
}

/* Decodes in[0..n); returns 0, or -1 on a decoding error. Output that the
 * decoder can produce from these bytes is all in d->out afterwards. */
static int dec_feed(dec_t *d, const void *in, size_t n) {
  unsigned char tmp[4096];
  if (d->e == GZ) {
    d->z.next_in = (Bytef *)in;
    d->z.avail_in = (uInt)n;
    for (;;) {
      d->z.next_out = tmp;
      d->z.avail_out = sizeof tmp;
      int rc = inflate(&d->z, Z_SYNC_FLUSH);
      tusk_buf_append(&d->out, tmp, sizeof tmp - d->z.avail_out);
      if (rc == Z_STREAM_END) {
        d->ended = 1;
        return d->z.avail_in == 0 ? 0 : -1;
      }
      if (rc == Z_BUF_ERROR && d->z.avail_in == 0) return 0;
      if (rc != Z_OK) return -1;
      if (d->z.avail_in == 0 && d->z.avail_out > 0) return 0;
    }
  }
  if (d->e == BR) {
    size_t avail_in = n;
    const uint8_t *next_in = in;
    for (;;) {
      size_t avail_out = sizeof tmp;
      uint8_t *next_out = tmp;
      BrotliDecoderResult r = BrotliDecoderDecompressStream(d->br, &avail_in, &next_in, &avail_out, &next_out, NULL);
      tusk_buf_append(&d->out, tmp, sizeof tmp - avail_out);
      if (r == BROTLI_DECODER_RESULT_SUCCESS) {
        d->ended = 1;
        return avail_in == 0 ? 0 : -1;
      }
      if (r == BROTLI_DECODER_RESULT_ERROR) return -1;
      /* It may ask for input with output still held back. */
      if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT && !BrotliDecoderHasMoreOutput(d->br)) return 0;
    }
  }
  ZSTD_inBuffer ib = {in, n, 0};
  for (;;) {
    ZSTD_outBuffer ob = {tmp, sizeof tmp, 0};
    size_t r = ZSTD_decompressStream(d->zs, &ob, &ib);
    if (ZSTD_isError(r)) return -1;
    tusk_buf_append(&d->out, tmp, ob.pos);
    if (r == 0) {
      d->ended = 1;
      return ib.pos == ib.size ? 0 : -1;
    }
    if (ib.pos == ib.size && ob.pos < ob.size) return 0;
  }
}

/* Decodes a complete stream in one go; 0 when it ends and equals want. */
static int decodes_to(tusk_enc_t e, const tusk_buf_t *enc, const void *want, size_t wn) {
  dec_t d;
  dec_init(&d, e);
  int ok = dec_feed(&d, enc->data, enc->len) == 0 && d.ended && d.out.len == wn &&
           (wn == 0 || memcmp(d.out.data, want, wn) == 0);
  dec_dispose(&d);
  return ok ? 0 : -1;
}

/* Input: text with repetition (so it compresses) and some pseudo-random
 * bytes (so blocks do not all look alike). */
static void make_input(tusk_buf_t *b, size_t n) {
  uint32_t x = 12345;
  while (b->len < n) {
    x = x * 1103515245u + 12345u;
    if ((x >> 16) % 4 == 0) {
      char c = (char)(x >> 8);
      tusk_buf_append(b, &c, 1);
    } else {
      tusk_buf_printf(b, "<li class=\"item\">row %u</li>\n", (x >> 16) % 1000);
    }
  }
  b->len = n;
}

/* Many small writes, a flush every few of them, then finish. After each
 * flush the bytes so far must decode to exactly the input so far. */
static void roundtrip_stream(tusk_enc_t e, int level, const tusk_buf_t *in) {
  tusk_encoder_t *enc = tusk_encoder_create(e, level);
  CHECK(enc != NULL);
  if (enc == NULL) return;
  dec_t d;
  dec_init(&d, e);
  tusk_buf_t out;
  tusk_buf_init(&out);
  size_t fed = 0, pos = 0, flushes = 0, bad = 0;
  uint32_t x = 99;
  while (pos < in->len) {
    x = x * 1103515245u + 12345u;
    size_t chunk = TUSK_MIN((size_t)((x >> 16) % 700), in->len - pos);
    int mode = ((x >> 8) % 5 == 0) ? TUSK_ENC_FLUSH : TUSK_ENC_MORE;
    if (tusk_encoder_write(enc, in->data + pos, chunk, mode, &out) != 0) bad++;
    pos += chunk;
    if (mode == TUSK_ENC_FLUSH) {
      flushes++;
      if (dec_feed(&d, out.data + fed, out.len - fed) != 0) bad++;
      fed = out.len;
      if (d.out.len != pos || memcmp(d.out.data, in->data, pos) != 0) {
        if (!bad) fprintf(stderr, "  %s level %d: after a flush at %zu, %zu bytes decode\n", tusk_compress_name(e), level, pos, d.out.len);
        bad++;
      }
      /* A second flush with nothing new must not break the stream. */
      if ((x >> 4) % 3 == 0 && tusk_encoder_write(enc, NULL, 0, TUSK_ENC_FLUSH, &out) != 0) bad++;
    }
  }
  CHECK_EQ(bad, 0);
  CHECK(flushes > 10);
  CHECK_EQ(tusk_encoder_write(enc, NULL, 0, TUSK_ENC_FINISH, &out), 0);
  CHECK_EQ(dec_feed(&d, out.data + fed, out.len - fed), 0);
  CHECK(d.ended);
  CHECK(d.out.len == in->len && memcmp(d.out.data, in->data, in->len) == 0);
  CHECK(out.len < in->len / 2);
  CHECK(out.data[out.len] == '\0'); /* the buffer's invariant holds */
  /* Nothing is accepted after the end. */
  CHECK_EQ(tusk_encoder_write(enc, "x", 1, TUSK_ENC_MORE, &out), -EINVAL);
  /* The whole output decodes in one go too. */
  CHECK_EQ(decodes_to(e, &out, in->data, in->len), 0);
  tusk_buf_dispose(&out);
  dec_dispose(&d);
  tusk_encoder_destroy(enc);
}

static void test_encoders(void) {
  static const tusk_enc_t encs[] = {TUSK_ENC_GZIP, TUSK_ENC_BR, TUSK_ENC_ZSTD};
  tusk_buf_t in;
  tusk_buf_init(&in);
  make_input(&in, 300000);
  for (size_t k = 0; k < TUSK_ARRAY_SIZE(encs); k++) {
    tusk_enc_t e = encs[k];
    roundtrip_stream(e, -1, &in);
    roundtrip_stream(e, 1, &in);
    roundtrip_stream(e, 100, &in); /* clamped to the maximum */

    /* An empty body: finish at once. */
    tusk_encoder_t *enc = tusk_encoder_create(e, -1);
    tusk_buf_t out;
    tusk_buf_init(&out);
    CHECK_EQ(tusk_encoder_write(enc, NULL, 0, TUSK_ENC_FINISH, &out), 0);
    CHECK(out.len > 0);
    CHECK_EQ(decodes_to(e, &out, "", 0), 0);
    tusk_encoder_destroy(enc);

    /* An empty flush first, then data, then finish with data. */
    tusk_buf_reset(&out);
    enc = tusk_encoder_create(e, -1);
    CHECK_EQ(tusk_encoder_write(enc, NULL, 0, TUSK_ENC_FLUSH, &out), 0);
    CHECK_EQ(tusk_encoder_write(enc, "hello ", 6, TUSK_ENC_MORE, &out), 0);
    CHECK_EQ(tusk_encoder_write(enc, "world", 5, TUSK_ENC_FINISH, &out), 0);
    CHECK_EQ(decodes_to(e, &out, "hello world", 11), 0);
    tusk_encoder_destroy(enc);

    /* Output is appended after what the buffer already holds. */
    tusk_buf_reset(&out);
    tusk_buf_append_str(&out, "HEAD");
    enc = tusk_encoder_create(e, -1);
    CHECK_EQ(tusk_encoder_write(enc, in.data, in.len, TUSK_ENC_FINISH, &out), 0);
    CHECK(out.len > 4 && memcmp(out.data, "HEAD", 4) == 0);
    tusk_buf_consume(&out, 4);
    CHECK_EQ(decodes_to(e, &out, in.data, in.len), 0);
    tusk_encoder_destroy(enc);

    /* Misuse. */
    enc = tusk_encoder_create(e, -1);
    CHECK_EQ(tusk_encoder_write(enc, NULL, 1, TUSK_ENC_MORE, &out), -EINVAL);
    CHECK_EQ(tusk_encoder_write(enc, "x", 1, 3, &out), -EINVAL);
    CHECK_EQ(tusk_encoder_write(enc, "x", 1, -1, &out), -EINVAL);
    tusk_encoder_destroy(enc);

    /* One-shot: the whole body, a small one, and an empty one. */
    tusk_buf_reset(&out);
    CHECK_EQ(tusk_compress_buffer(e, -1, in.data, in.len, &out), 0);
    CHECK(out.len < in.len / 2);
    CHECK_EQ(decodes_to(e, &out, in.data, in.len), 0);
    tusk_buf_reset(&out);
    CHECK_EQ(tusk_compress_buffer(e, 9, in.data, 1000, &out), 0);
    CHECK_EQ(decodes_to(e, &out, in.data, 1000), 0);
    tusk_buf_reset(&out);
    CHECK_EQ(tusk_compress_buffer(e, -1, NULL, 0, &out), 0);
    CHECK_EQ(decodes_to(e, &out, "", 0), 0);
    tusk_buf_dispose(&out);
  }
  tusk_buf_t out;
  tusk_buf_init(&out);
  CHECK(tusk_encoder_create(TUSK_ENC_NONE, -1) == NULL);
  CHECK(tusk_encoder_create((tusk_enc_t)3, -1) == NULL);
  CHECK_EQ(tusk_compress_buffer(TUSK_ENC_NONE, -1, "x", 1, &out), -EINVAL);
  CHECK_EQ(tusk_compress_buffer(TUSK_ENC_GZIP, -1, NULL, 1, &out), -EINVAL);
  CHECK_EQ(out.len, 0);
  tusk_encoder_destroy(NULL);
  tusk_buf_dispose(&out);

  /* A one-shot zstd frame records the size; a gzip one is a gzip file. */
  tusk_buf_init(&out);
  tusk_compress_buffer(TUSK_ENC_ZSTD, -1, in.data, 5000, &out);
  CHECK(ZSTD_getFrameContentSize(out.data, out.len) == 5000);
  tusk_buf_reset(&out);
  tusk_compress_buffer(TUSK_ENC_GZIP, -1, in.data, 5000, &out);
  CHECK(out.len > 18 && (unsigned char)out.data[0] == 0x1f && (unsigned char)out.data[1] == 0x8b);
  tusk_buf_dispose(&out);
  tusk_buf_dispose(&in);
}

int main(void) {
  test_negotiate();
  test_names();
  test_types();
  test_encoders();
  TUSK_CHECK_REPORT();
}
