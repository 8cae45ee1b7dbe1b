/* TCP listener on the master's loop. Accepted connections go to the
 * HTTP/1.1 layer. */
#ifndef TUSK_NET_SERVER_H
#define TUSK_NET_SERVER_H

#include <uv.h>

#include "http/h1_conn.h"

/* Creates a bound, listening, non-blocking socket without a loop. With
 * reuseport, several such sockets share the port and the kernel spreads
 * new connections over them (direct mode: one per worker). Returns 0 and
 * the descriptor, or -1 with a sentence in err. */
int tusk_server_bind(const char *host, int port, int reuseport, int *fd, int *bound_port, char *err,
                     size_t errlen);

/* Accepts connections for ctx on an already listening socket fd. */
int tusk_server_listen_fd(tusk_http_ctx_t *ctx, uv_tcp_t *listener, int fd, char *err, size_t errlen);

struct tusk_tls_ctx_s;

/* Re-fetches the OCSP staples of tls every `secs` seconds on libuv's
 * thread pool, so the loop never waits for a responder; one refresh at a
 * time (a tick while one runs is skipped). Logs the outcome (info when
 * something was stapled, debug otherwise). The timer does not keep the
 * loop alive. Call once per process that serves TLS, from its loop's
 * thread. */
void tusk_server_ocsp_refresher_start(uv_loop_t *loop, struct tusk_tls_ctx_s *tls, double secs);

#endif
