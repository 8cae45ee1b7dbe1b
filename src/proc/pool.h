/* The pool of PHP worker processes, as seen by HTTP connections.
 * Implemented in master.c, which owns the workers. Call only from the
 * master's loop thread. */
#ifndef TUSK_PROC_POOL_H
#define TUSK_PROC_POOL_H

#include "http/h1_conn.h"

/* Queues c's request (c->reqframe, a complete REQ frame) for an idle
 * worker. Returns 0, or TUSK_ELIMIT when the queue is full (answer 503). */
int tusk_pool_submit(tusk_h1_conn_t *c);

/* The connection is going away: drop it from the queue, or tell its worker
 * the client left (connection_aborted()) and forget the connection. */
void tusk_pool_cancel(tusk_h1_conn_t *c);

#endif
