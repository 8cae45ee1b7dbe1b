/* Small pieces of HTTP responses shared by h1 (and later h2). Pure. */
#ifndef TUSK_HTTP_RESPONSE_H
#define TUSK_HTTP_RESPONSE_H

#include <stddef.h>
#include <time.h>

#include "core/buf.h"

/* Reason phrase for a status code ("" when not known: the status line then
 * ends after the code, as nginx does). */
const char *tusk_http_reason(int status);

/* The current time as an IMF-fixdate ("Sun, 22 Nov 2026 04:20:00 GMT"),
 * cached for one second. Returns a static string. */
const char *tusk_http_date_now(void);
void tusk_http_date_format(time_t t, char out[32]);
/* Parses an IMF-fixdate; returns -1 when it is not one. */
time_t tusk_http_date_parse(const char *s, size_t len);

/* Appends a small HTML error page body for status to out. */
void tusk_http_error_body(tusk_buf_t *out, int status);

#endif
