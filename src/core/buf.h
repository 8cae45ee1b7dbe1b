/* A growable byte buffer (a value type, like curl's dynbuf).
 *
 * tusk_buf_init() cannot fail and allocates nothing; tusk_buf_dispose()
 * frees the storage and leaves an empty buffer. Appending returns 0 or
 * TUSK_ENOMEM; on failure the buffer is unchanged. Data is always kept
 * NUL-terminated (the NUL is not counted in len) so it can be handed to
 * C string APIs. Safe to call from any callback. */
#ifndef TUSK_CORE_BUF_H
#define TUSK_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct tusk_buf_s {
  char *data;
  size_t len;
  size_t cap;
} tusk_buf_t;

void tusk_buf_init(tusk_buf_t *b);
void tusk_buf_dispose(tusk_buf_t *b);
/* Ensures room for `extra` more bytes (plus the NUL). */
int tusk_buf_reserve(tusk_buf_t *b, size_t extra);
int tusk_buf_append(tusk_buf_t *b, const void *data, size_t len);
int tusk_buf_append_str(tusk_buf_t *b, const char *s);
/* Appends v in decimal (no printf: it is on every response's path). */
int tusk_buf_append_u64(tusk_buf_t *b, unsigned long long v);
/* Writes v in decimal and a NUL to out (at least 21 bytes); returns the
 * number of digits. */
size_t tusk_u64_str(unsigned long long v, char *out);
int tusk_buf_printf(tusk_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len). */
void tusk_buf_consume(tusk_buf_t *b, size_t n);
void tusk_buf_reset(tusk_buf_t *b);

#endif
