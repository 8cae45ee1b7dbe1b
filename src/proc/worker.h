/* A PHP worker process: reads REQ frames from its channel, runs PHP, writes
 * the response frames back. Runs until QUIT, EOF on the channel, or a
 * fatal channel error. Never returns: it calls _exit(). */
#ifndef TUSK_PROC_WORKER_H
#define TUSK_PROC_WORKER_H

#include "conf/conf.h"

struct tusk_slot_s;

void tusk_worker_main(int chan_fd, int index) __attribute__((noreturn));

/* A direct-mode worker: runs its own HTTP loop on the inherited listening
 * socket and PHP inline (src/proc/direct.c). SIGTERM drains it. Never
 * returns. */
void tusk_worker_direct_main(const tusk_conf_t *conf, int listen_fd, int index, struct tusk_slot_s *slot)
    __attribute__((noreturn));

#endif
