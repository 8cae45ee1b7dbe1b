/* HTTP response compression: Accept-Encoding negotiation, which types are
 * worth compressing, and streaming gzip / brotli / zstd encoders.
 *
 * Pure: no I/O, no libuv, no PHP. Every function is safe to call from any
 * callback; an encoder belongs to one response and is not thread-safe.
 * The codecs are the system's zlib, libbrotlienc and libzstd.
 *
 * The caller owns the HTTP side: it sends "Content-Encoding: <name>" and
 * "Vary: Accept-Encoding", drops Content-Length (or recomputes it for a
 * one-shot body), and weakens or changes a strong ETag. */
#ifndef TUSK_HTTP_COMPRESS_H
#define TUSK_HTTP_COMPRESS_H

#include <stddef.h>

#include "core/buf.h"

typedef enum { TUSK_ENC_NONE = 0, TUSK_ENC_GZIP = 1, TUSK_ENC_BR = 2, TUSK_ENC_ZSTD = 4 } tusk_enc_t;

/* Every encoding this module implements, as an `allowed` mask. */
#define TUSK_ENC_ALL (TUSK_ENC_GZIP | TUSK_ENC_BR | TUSK_ENC_ZSTD)

/* Default levels used when `level` is -1 (any negative value): fast
 * settings meant for dynamic responses, where compression runs per
 * request. Precompressed static files should use higher levels offline. */
#define TUSK_GZIP_LEVEL_DEFAULT 5
#define TUSK_BR_LEVEL_DEFAULT 4
#define TUSK_ZSTD_LEVEL_DEFAULT 3

/* Parses an Accept-Encoding field value accept[0..len) (RFC 9110 12.5.3)
 * and returns the best encoding among those in `allowed` (a mask of
 * tusk_enc_t bits; other bits are ignored), or TUSK_ENC_NONE when none is
 * acceptable (send the body unencoded). NULL or len 0 gives NONE. Never
 * reads past len; no allocation.
 *
 * - The value is a comma list of `coding *( OWS ";" OWS param )`; empty
 *   elements and OWS are skipped. Codings and parameter names are
 *   case-insensitive; "x-gzip" counts as "gzip" (RFC 9110 8.4.1.3).
 * - q is a qvalue: "0" ["." 0-3 digits] or "1" ["." 0-3 zeros]; absent
 *   means 1. An element whose syntax or q is invalid (q=1.5, q=0.0001,
 *   q=, a repeated q, a coding that is not a token) is ignored as a whole.
 *   Parameters other than q are accepted and ignored.
 * - q=0 excludes a coding. "*" gives its q to every coding not listed by
 *   name. A coding listed twice gets the lower of its q values.
 * - The highest q wins; ties go to br, then zstd, then gzip.
 * - "identity" listed explicitly with a q higher than the winner's means
 *   the client prefers an unencoded body: NONE. "*" does not count as a
 *   preference for identity. (identity;q=0 cannot be honoured by a
 *   compressor that has nothing acceptable: the result is NONE too.) */
tusk_enc_t tusk_compress_negotiate(const char *accept, size_t len, unsigned allowed);

/* As tusk_compress_negotiate(), but ties go to zstd, then br, then gzip:
 * for bodies compressed as they are sent (PHP output), where zstd at its
 * default level costs a fraction of br's or gzip's CPU for as small a
 * result (bench/app/page.php, 100 KiB of HTML: zstd 3 ~0.2 ms and 14.6 KB,
 * br 4 ~0.9 ms and 15.3 KB, gzip 5 ~1.4 ms and 16.0 KB). Files, which are
 * compressed once and cached, keep br first. */
tusk_enc_t tusk_compress_negotiate_live(const char *accept, size_t len, unsigned allowed);

/* The Content-Encoding token: "gzip", "br", "zstd"; "identity" for NONE
 * (never send it); NULL for any other value. A static string. */
const char *tusk_compress_name(tusk_enc_t e);

/* The file name suffix of a precompressed variant: ".gz", ".br", ".zst";
 * "" for NONE; NULL for any other value. A static string. */
const char *tusk_compress_suffix(tusk_enc_t e);

/* 1 when a Content-Type value content_type[0..len) is worth compressing,
 * else 0. Parameters and case are ignored ("Text/HTML; charset=utf-8").
 * Yes: every text/ type but text/event-stream (its events must not wait in a
 * compressor), application/json, javascript, x-javascript, ecmascript,
 * xml, wasm, x-ndjson, yaml, vnd.ms-fontobject, any "+json", "+xml" or
 * "+yaml" type (image/svg+xml, application/manifest+json, rss+xml...),
 * font/ttf, font/otf, font/collection, image/x-icon,
 * image/vnd.microsoft.icon, image/bmp. No: everything else, notably other
 * images, audio, video, woff/woff2 fonts, archives and already
 * compressed types. NULL or len 0 gives 0. Never reads past len. */
int tusk_compress_type_ok(const char *content_type, size_t len);

typedef struct tusk_encoder_s tusk_encoder_t; /* opaque */

/* A streaming encoder for GZIP, BR or ZSTD. level < 0 picks the default
 * above; other values are clamped to the codec's range (gzip 0-9, br
 * 0-11, zstd 1-22). Brotli and zstd use a window of at most 512 KB, which
 * bounds their memory (and keeps zstd within the 8 MB window RFC 9659
 * lets clients refuse to exceed). Memory per encoder at the default
 * levels: gzip ~270 KB; br ~1.1 MB for a 20 KB body, growing to ~5 MB
 * for multi-megabyte ones; zstd ~2 MB. Returns NULL when memory
 * is short or e is not one of the three. The caller owns the encoder and
 * frees it with tusk_encoder_destroy(). */
tusk_encoder_t *tusk_encoder_create(tusk_enc_t e, int level);

#define TUSK_ENC_MORE 0   /* more input follows: the encoder may keep data back */
#define TUSK_ENC_FLUSH 1  /* all the input so far must be decodable now */
#define TUSK_ENC_FINISH 2 /* end of stream: the trailer is written */

/* Compresses data[0..len) and appends the output to out (possibly
 * nothing, with TUSK_ENC_MORE). data may be NULL when len is 0. After
 * TUSK_ENC_FLUSH, the bytes appended so far decode to all the input so
 * far (Z_SYNC_FLUSH, BROTLI_OPERATION_FLUSH, ZSTD_e_flush); a flush costs a
 * few bytes, so flush when the application does, not per write. After
 * TUSK_ENC_FINISH the stream is complete and the encoder accepts nothing
 * more. Returns 0; TUSK_ENOMEM; -EINVAL for a bad mode, NULL data with
 * len > 0, or a write after FINISH; -EIO if the codec fails. After an
 * error the stream is broken (out may hold part of the output): only
 * tusk_encoder_destroy() is useful then. */
int tusk_encoder_write(tusk_encoder_t *enc, const void *data, size_t len, int mode, tusk_buf_t *out);

/* Frees the encoder. NULL is a no-op. */
void tusk_encoder_destroy(tusk_encoder_t *enc);

/* Compresses a whole body data[0..len) as one complete stream appended to
 * out (the codec is told the size, so small bodies get small windows).
 * Returns as tusk_encoder_write(), and -EINVAL for NONE or an unknown e. */
int tusk_compress_buffer(tusk_enc_t e, int level, const void *data, size_t len, tusk_buf_t *out);

#endif
