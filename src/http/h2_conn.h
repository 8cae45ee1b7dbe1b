/* HTTP/2 on a connection (nghttp2), over TLS (ALPN "h2") or cleartext
 * (h2c: prior knowledge, or an HTTP/1.1 Upgrade).
 *
 * The connection (http/h1_conn.c) owns the socket, TLS and timers; once
 * it has switched to HTTP/2 it passes every byte read to tusk_h2_feed()
 * and calls tusk_h2_flush() when its writes drain. Each stream is routed
 * like an HTTP/1.1 request (http/request.h); PHP streams are jobs of their
 * own, so the streams of one connection run on several workers at once
 * in pooled mode. Request bodies are buffered before PHP runs and
 * responses after it, as in HTTP/1.1. */
#ifndef TUSK_HTTP_H2_CONN_H
#define TUSK_HTTP_H2_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "http/request.h"

typedef struct tusk_h2_s tusk_h2_t;
struct tusk_h1_conn_s;

/* Starts HTTP/2 on c. For an HTTP/1.1 Upgrade, `upgrade` is the request
 * that asked for it (it becomes stream 1 and is dispatched now) and
 * settings/settings_len the decoded HTTP2-Settings header. Returns NULL on
 * failure (the caller closes the connection). */
tusk_h2_t *tusk_h2_create(struct tusk_h1_conn_s *c, const tusk_http_req_t *upgrade, const char *settings,
                          size_t settings_len);
/* Cancels every stream's job and frees the session. NULL is a no-op. */
void tusk_h2_destroy(tusk_h2_t *h);
/* Processes received bytes. Returns 0, or a negative code when the
 * connection must close (after what tusk_h2_flush() still sends). */
int tusk_h2_feed(tusk_h2_t *h, const char *data, size_t len);
/* Writes what the session has to send, as far as the socket takes it. */
void tusk_h2_flush(tusk_h2_t *h);
/* GOAWAY: no new streams, finish the open ones, then close. */
void tusk_h2_drain(tusk_h2_t *h);
/* 1 when no stream is open (for the idle timeout). */
int tusk_h2_idle(const tusk_h2_t *h);
/* 1 once tusk_h2_drain() has sent GOAWAY. */
int tusk_h2_draining(const tusk_h2_t *h);
/* --sse-keepalive: sends ": keep-alive" comments on text/event-stream
 * responses that PHP left quiet for that long (only between events).
 * Returns the ms until the next one is due, or -1 when no stream needs
 * one. Called from the connection's timer. */
int64_t tusk_h2_sse_keepalive(tusk_h2_t *h);

#endif
