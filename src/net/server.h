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

#endif
