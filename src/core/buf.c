#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

void tusk_buf_init(tusk_buf_t *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void tusk_buf_dispose(tusk_buf_t *b) {
  free(b->data);
  tusk_buf_init(b);
}

int tusk_buf_reserve(tusk_buf_t *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return 0;
  size_t want = b->len + extra + 1;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < want) cap *= 2;
  char *p = realloc(b->data, cap);
  if (p == NULL) return TUSK_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int tusk_buf_append(tusk_buf_t *b, const void *data, size_t len) {
  if (tusk_buf_reserve(b, len) != 0) return TUSK_ENOMEM;
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

int tusk_buf_append_str(tusk_buf_t *b, const char *s) {
  return tusk_buf_append(b, s, strlen(s));
}

size_t tusk_u64_str(unsigned long long v, char *out) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = '\0';
  return n;
}

int tusk_buf_append_u64(tusk_buf_t *b, unsigned long long v) {
  char tmp[21];
  return tusk_buf_append(b, tmp, tusk_u64_str(v, tmp));
}

int tusk_buf_printf(tusk_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[256];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return TUSK_EPROTO;
  if ((size_t)n < sizeof tmp) return tusk_buf_append(b, tmp, (size_t)n);
  if (tusk_buf_reserve(b, (size_t)n) != 0) return TUSK_ENOMEM;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void tusk_buf_consume(tusk_buf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
  } else {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
  }
  if (b->data) b->data[b->len] = '\0';
}

void tusk_buf_reset(tusk_buf_t *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}
