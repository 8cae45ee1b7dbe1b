#include "http/compress.h"

#include <brotli/encode.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "core/common.h"

/* ---- Accept-Encoding ---------------------------------------------------- */

static int is_tchar(int c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int lower(int c) {
  return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int token_is(const char *t, size_t n, const char *want) {
  size_t i = 0;
  for (; i < n && want[i]; i++) {
    if (lower((unsigned char)t[i]) != want[i]) return 0;
  }
  return i == n && want[i] == '\0';
}

static size_t skip_ows(const char *s, size_t i, size_t len) {
  while (i < len && (s[i] == ' ' || s[i] == '\t')) i++;
  return i;
}

static size_t skip_token(const char *s, size_t i, size_t len) {
  while (i < len && is_tchar((unsigned char)s[i])) i++;
  return i;
}

/* Parses a qvalue that is exactly v[0..n) into 0..1000, or returns -1. */
static int parse_qvalue(const char *v, size_t n) {
  if (n == 0 || (v[0] != '0' && v[0] != '1')) return -1;
  int q = (v[0] - '0') * 1000;
  if (n == 1) return q;
  if (v[1] != '.' || n > 5) return -1;
  int scale = 100;
  for (size_t i = 2; i < n; i++, scale /= 10) {
    if (v[i] < '0' || v[i] > '9') return -1;
    q += (v[i] - '0') * scale;
  }
  return q > 1000 ? -1 : q;
}

/* Skips a quoted-string starting at s[i] == '"'; returns the index after
 * the closing quote, or len + 1 when it is not closed. */
static size_t skip_quoted(const char *s, size_t i, size_t len) {
  for (i++; i < len; i++) {
    if (s[i] == '\\') {
      if (++i >= len) break;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return len + 1;
}

enum { C_GZIP, C_BR, C_ZSTD, C_IDENTITY, C_STAR, C_OTHER, C_COUNT };

/* Fills q[] (per-mille, -1 when not listed) from the field value. */
static void parse_accept(const char *s, size_t len, int q[C_COUNT]) {
  for (int k = 0; k < C_COUNT; k++) q[k] = -1;
  size_t i = 0;
  while (i < len) {
    i = skip_ows(s, i, len);
    if (i < len && s[i] == ',') {
      i++; /* an empty element */
      continue;
    }
    if (i >= len) break;
    size_t t0 = i;
    i = skip_token(s, i, len);
    size_t tn = i - t0;
    int ok = tn > 0, qv = 1000, seen_q = 0;
    /* Parameters: OWS ";" OWS name "=" ( token / quoted-string ). */
    while (ok) {
      i = skip_ows(s, i, len);
      if (i >= len || s[i] != ';') break;
      i = skip_ows(s, i + 1, len);
      size_t n0 = i;
      i = skip_token(s, i, len);
      size_t nn = i - n0;
      if (nn == 0 || i >= len || s[i] != '=') {
        ok = 0;
        break;
      }
      size_t v0 = ++i;
      if (i < len && s[i] == '"') {
        i = skip_quoted(s, i, len);
        if (i > len) {
          ok = 0;
          break;
        }
      } else {
        i = skip_token(s, i, len);
      }
      if (i == v0) {
        ok = 0;
        break;
      }
      if (token_is(s + n0, nn, "q")) {
        int v = parse_qvalue(s + v0, i - v0);
        if (v < 0 || seen_q) ok = 0;
        qv = v;
        seen_q = 1;
      }
    }
    if (ok && i < len && s[i] != ',') ok = 0;
    if (!ok) {
      /* Malformed: drop the element, resume after the next comma. */
      while (i < len && s[i] != ',') i++;
      continue;
    }
    const char *t = s + t0;
    int k = C_OTHER;
    if (token_is(t, tn, "gzip") || token_is(t, tn, "x-gzip")) {
      k = C_GZIP;
    } else if (token_is(t, tn, "br")) {
      k = C_BR;
    } else if (token_is(t, tn, "zstd")) {
      k = C_ZSTD;
    } else if (token_is(t, tn, "identity")) {
      k = C_IDENTITY;
    } else if (tn == 1 && t[0] == '*') {
      k = C_STAR;
    }
    if (k != C_OTHER && (q[k] < 0 || qv < q[k])) q[k] = qv;
  }
}

typedef struct enc_order_s {
  tusk_enc_t e;
  int k;
} enc_order_t;

/* Our preference order (3 entries) decides ties: the first with the best q wins. */
static tusk_enc_t negotiate(const char *accept, size_t len, unsigned allowed, const enc_order_t *order) {
  if (accept == NULL || len == 0) return TUSK_ENC_NONE;
  int q[C_COUNT];
  parse_accept(accept, len, q);
  tusk_enc_t best = TUSK_ENC_NONE;
  int best_q = 0;
  for (size_t j = 0; j < 3; j++) {
    if (!(allowed & (unsigned)order[j].e)) continue;
    int v = q[order[j].k] >= 0 ? q[order[j].k] : q[C_STAR];
    if (v > best_q) {
      best = order[j].e;
      best_q = v;
    }
  }
  if (best != TUSK_ENC_NONE && q[C_IDENTITY] > best_q) return TUSK_ENC_NONE;
  return best;
}

tusk_enc_t tusk_compress_negotiate(const char *accept, size_t len, unsigned allowed) {
  static const enc_order_t order[] = {{TUSK_ENC_BR, C_BR}, {TUSK_ENC_ZSTD, C_ZSTD}, {TUSK_ENC_GZIP, C_GZIP}};
  return negotiate(accept, len, allowed, order);
}

tusk_enc_t tusk_compress_negotiate_live(const char *accept, size_t len, unsigned allowed) {
  static const enc_order_t order[] = {{TUSK_ENC_ZSTD, C_ZSTD}, {TUSK_ENC_BR, C_BR}, {TUSK_ENC_GZIP, C_GZIP}};
  return negotiate(accept, len, allowed, order);
}

const char *tusk_compress_name(tusk_enc_t e) {
  switch (e) {
    case TUSK_ENC_NONE: return "identity";
    case TUSK_ENC_GZIP: return "gzip";
    case TUSK_ENC_BR: return "br";
    case TUSK_ENC_ZSTD: return "zstd";
  }
  return NULL;
}

const char *tusk_compress_suffix(tusk_enc_t e) {
  switch (e) {
    case TUSK_ENC_NONE: return "";
    case TUSK_ENC_GZIP: return ".gz";
    case TUSK_ENC_BR: return ".br";
    case TUSK_ENC_ZSTD: return ".zst";
  }
  return NULL;
}

/* ---- Content-Type ------------------------------------------------------- */

int tusk_compress_type_ok(const char *ct, size_t len) {
  if (ct == NULL) return 0;
  size_t i = skip_ows(ct, 0, len);
  /* The media type is type "/" subtype, lowercased into a small buffer:
   * anything longer than any type we accept is not one of them. */
  char m[80];
  size_t n = 0;
  while (i < len && ct[i] != ';' && ct[i] != ' ' && ct[i] != '\t') {
    if (n == sizeof m - 1) return 0;
    m[n++] = (char)lower((unsigned char)ct[i++]);
  }
  m[n] = '\0';
  const char *slash = memchr(m, '/', n);
  if (slash == NULL || slash == m || slash == m + n - 1) return 0;
  const char *sub = slash + 1;
  size_t tl = (size_t)(slash - m), sl = n - tl - 1;

  if (tl == 4 && memcmp(m, "text", 4) == 0) return strcmp(sub, "event-stream") != 0;
  static const char *suffixes[] = {"+json", "+xml", "+yaml"};
  for (size_t k = 0; k < TUSK_ARRAY_SIZE(suffixes); k++) {
    size_t l = strlen(suffixes[k]);
    if (sl > l && memcmp(sub + sl - l, suffixes[k], l) == 0) return 1;
  }
  static const char *types[] = {
      "application/json",       "application/javascript",        "application/x-javascript",
      "application/ecmascript", "application/xml",               "application/wasm",
      "application/x-ndjson",   "application/yaml",              "application/x-yaml",
      "application/x-font-ttf", "application/x-font-otf",        "application/vnd.ms-fontobject",
      "font/ttf",               "font/otf",                      "font/collection",
      "image/x-icon",           "image/vnd.microsoft.icon",      "image/bmp",
  };
  for (size_t k = 0; k < TUSK_ARRAY_SIZE(types); k++) {
    if (strcmp(m, types[k]) == 0) return 1;
  }
  return 0;
}

/* ---- Encoders ----------------------------------------------------------- */

struct tusk_encoder_s {
  tusk_enc_t e;
  int finished;
  union {
    z_stream z;
    BrotliEncoderState *br;
    ZSTD_CCtx *zstd;
  } u;
};

/* Output is produced straight into out's spare room, in steps of this. */
#define OUT_STEP 16384

static int clamp(int level, int def, int lo, int hi) {
  if (level < 0) return def;
  return level < lo ? lo : level > hi ? hi : level;
}

/* The window of brotli and zstd streams: 2^19 (512 KB) at most. A larger
 * one gains about 1% on multi-megabyte bodies, but the encoders size their
 * tables by it (brotli at quality 4: 1.1 MB with 2^19, 8 MB with its
 * default 2^22; zstd at level 3: 2 MB instead of 3.5 MB), and a server
 * holds one per response in flight. It also keeps zstd far inside the
 * 8 MB window clients may require (RFC 9659). A known small size gets a
 * window just large enough. */
static int window_log(size_t size_hint) {
  int w = 19;
  while (size_hint > 0 && w > 10 && ((size_t)1 << (w - 1)) >= size_hint) w--;
  return w;
}

/* size_hint: the whole input's size when known (one-shot), else 0. */
static tusk_encoder_t *encoder_create(tusk_enc_t e, int level, size_t size_hint) {
  tusk_encoder_t *enc = calloc(1, sizeof *enc);
  if (enc == NULL) return NULL;
  enc->e = e;
  switch (e) {
    case TUSK_ENC_GZIP:
      /* windowBits 15 + 16: a gzip header and trailer around deflate. */
      if (deflateInit2(&enc->u.z, clamp(level, TUSK_GZIP_LEVEL_DEFAULT, 0, 9), Z_DEFLATED, 15 + 16, 8,
                       Z_DEFAULT_STRATEGY) != Z_OK)
        goto fail;
      return enc;
    case TUSK_ENC_BR:
      enc->u.br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
      if (enc->u.br == NULL) goto fail;
      if (!BrotliEncoderSetParameter(enc->u.br, BROTLI_PARAM_QUALITY,
                                     (uint32_t)clamp(level, TUSK_BR_LEVEL_DEFAULT, 0, 11)))
        goto fail_br;
      if (!BrotliEncoderSetParameter(enc->u.br, BROTLI_PARAM_LGWIN, window_log(size_hint)) ||
          (size_hint > 0 && !BrotliEncoderSetParameter(enc->u.br, BROTLI_PARAM_SIZE_HINT,
                                                       (uint32_t)TUSK_MIN(size_hint, (size_t)1 << 30))))
        goto fail_br;
      return enc;
    case TUSK_ENC_ZSTD:
      enc->u.zstd = ZSTD_createCCtx();
      if (enc->u.zstd == NULL) goto fail;
      if (ZSTD_isError(ZSTD_CCtx_setParameter(enc->u.zstd, ZSTD_c_compressionLevel,
                                              clamp(level, TUSK_ZSTD_LEVEL_DEFAULT, 1, ZSTD_maxCLevel()))) ||
          ZSTD_isError(ZSTD_CCtx_setParameter(enc->u.zstd, ZSTD_c_windowLog, window_log(size_hint))))
        goto fail_zstd;
      /* A known size goes in the frame header and shrinks the window. */
      if (size_hint > 0 && ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(enc->u.zstd, size_hint))) goto fail_zstd;
      return enc;
    default:
      goto fail;
  }
fail_zstd:
  ZSTD_freeCCtx(enc->u.zstd);
  goto fail;
fail_br:
  BrotliEncoderDestroyInstance(enc->u.br);
fail:
  free(enc);
  return NULL;
}

tusk_encoder_t *tusk_encoder_create(tusk_enc_t e, int level) {
  return encoder_create(e, level, 0);
}

void tusk_encoder_destroy(tusk_encoder_t *enc) {
  if (enc == NULL) return;
  switch (enc->e) {
    case TUSK_ENC_GZIP: deflateEnd(&enc->u.z); break;
    case TUSK_ENC_BR: BrotliEncoderDestroyInstance(enc->u.br); break;
    case TUSK_ENC_ZSTD: ZSTD_freeCCtx(enc->u.zstd); break;
    default: break;
  }
  free(enc);
}

/* Makes room for at least one step of output; returns the room or 0. */
static size_t out_room(tusk_buf_t *out) {
  if (tusk_buf_reserve(out, OUT_STEP) != 0) return 0;
  return out->cap - out->len - 1; /* keep the NUL's byte */
}

static void out_commit(tusk_buf_t *out, size_t n) {
  out->len += n;
  out->data[out->len] = '\0';
}

static int write_gzip(z_stream *z, const unsigned char *in, size_t len, int mode, tusk_buf_t *out) {
  int last_flush = mode == TUSK_ENC_FINISH ? Z_FINISH : mode == TUSK_ENC_FLUSH ? Z_SYNC_FLUSH : Z_NO_FLUSH;
  /* avail_in is a uInt: feed large inputs in slices. */
  do {
    size_t slice = TUSK_MIN(len, (size_t)1 << 30);
    int flush = slice == len ? last_flush : Z_NO_FLUSH;
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)slice;
    for (;;) {
      size_t room = out_room(out);
      if (room == 0) return TUSK_ENOMEM;
      uInt avail = (uInt)TUSK_MIN(room, (size_t)1 << 30);
      z->next_out = (Bytef *)out->data + out->len;
      z->avail_out = avail;
      int rc = deflate(z, flush);
      out_commit(out, avail - z->avail_out);
      if (rc == Z_STREAM_END) break;
      /* Z_BUF_ERROR only says no progress was possible: nothing to do. */
      if (rc != Z_OK && rc != Z_BUF_ERROR) return -EIO;
      /* Done when zlib had room to spare (a full output may hide more). */
      if (z->avail_out > 0 && z->avail_in == 0 && flush != Z_FINISH) break;
      if (rc == Z_BUF_ERROR && z->avail_out > 0) return -EIO; /* stuck */
    }
    if (slice == len) break; /* (in may be NULL: no arithmetic on it) */
    in += slice;
    len -= slice;
  } while (len > 0);
  return 0;
}

static int write_br(BrotliEncoderState *br, const unsigned char *in, size_t len, int mode, tusk_buf_t *out) {
  BrotliEncoderOperation op = mode == TUSK_ENC_FINISH  ? BROTLI_OPERATION_FINISH
                              : mode == TUSK_ENC_FLUSH ? BROTLI_OPERATION_FLUSH
                                                       : BROTLI_OPERATION_PROCESS;
  size_t avail_in = len;
  const uint8_t *next_in = in;
  for (;;) {
    size_t room = out_room(out);
    if (room == 0) return TUSK_ENOMEM;
    size_t avail_out = room;
    uint8_t *next_out = (uint8_t *)out->data + out->len;
    if (!BrotliEncoderCompressStream(br, op, &avail_in, &next_in, &avail_out, &next_out, NULL)) return -EIO;
    out_commit(out, room - avail_out);
    if (op == BROTLI_OPERATION_FINISH) {
      if (BrotliEncoderIsFinished(br)) break;
    } else if (avail_in == 0 && !BrotliEncoderHasMoreOutput(br)) {
      break;
    }
  }
  return 0;
}

static int write_zstd(ZSTD_CCtx *cctx, const unsigned char *in, size_t len, int mode, tusk_buf_t *out) {
  ZSTD_EndDirective op = mode == TUSK_ENC_FINISH ? ZSTD_e_end : mode == TUSK_ENC_FLUSH ? ZSTD_e_flush : ZSTD_e_continue;
  ZSTD_inBuffer ib = {in, len, 0};
  for (;;) {
    size_t room = out_room(out);
    if (room == 0) return TUSK_ENOMEM;
    ZSTD_outBuffer ob = {out->data + out->len, room, 0};
    size_t left = ZSTD_compressStream2(cctx, &ob, &ib, op);
    if (ZSTD_isError(left)) {
      return ZSTD_getErrorCode(left) == ZSTD_error_memory_allocation ? TUSK_ENOMEM : -EIO;
    }
    out_commit(out, ob.pos);
    /* e_continue is done once the input is taken; flush and end are done
     * when nothing is left in the context. */
    if (op == ZSTD_e_continue ? ib.pos == ib.size : left == 0) break;
  }
  return 0;
}

int tusk_encoder_write(tusk_encoder_t *enc, const void *data, size_t len, int mode, tusk_buf_t *out) {
  if (enc == NULL || out == NULL || (data == NULL && len > 0) || mode < TUSK_ENC_MORE || mode > TUSK_ENC_FINISH ||
      enc->finished)
    return -EINVAL;
  int rc;
  switch (enc->e) {
    case TUSK_ENC_GZIP: rc = write_gzip(&enc->u.z, data, len, mode, out); break;
    case TUSK_ENC_BR: rc = write_br(enc->u.br, data, len, mode, out); break;
    case TUSK_ENC_ZSTD: rc = write_zstd(enc->u.zstd, data, len, mode, out); break;
    default: return -EINVAL;
  }
  /* A failed stream cannot continue either. */
  if (rc != 0 || mode == TUSK_ENC_FINISH) enc->finished = 1;
  return rc;
}

int tusk_compress_buffer(tusk_enc_t e, int level, const void *data, size_t len, tusk_buf_t *out) {
  if (e != TUSK_ENC_GZIP && e != TUSK_ENC_BR && e != TUSK_ENC_ZSTD) return -EINVAL;
  if (data == NULL && len > 0) return -EINVAL;
  tusk_encoder_t *enc = encoder_create(e, level, len);
  if (enc == NULL) return TUSK_ENOMEM;
  int rc = tusk_encoder_write(enc, data, len, TUSK_ENC_FINISH, out);
  tusk_encoder_destroy(enc);
  return rc;
}
