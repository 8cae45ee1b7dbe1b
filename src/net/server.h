/* TCP listener on the master's loop. Accepted connections go to the
 * HTTP/1.1 layer. */
#ifndef TUSK_NET_SERVER_H
#define TUSK_NET_SERVER_H

#include <uv.h>

#include "http/h1_conn.h"

/* Binds and listens on host:port. *bound_port receives the real port
 * (useful with port 0). Returns 0 or a libuv error code; err gets a
 * sentence for the operator. */
int tusk_server_listen(tusk_http_ctx_t *ctx, uv_tcp_t *listener, const char *host, int port,
                       int *bound_port, char *err, size_t errlen);

#endif
