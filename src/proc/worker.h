/* A PHP worker process: reads REQ frames from its channel, runs PHP, writes
 * the response frames back. Classic mode runs a script per request; with
 * conf->worker_script the worker script runs once and takes requests
 * through frankenphp_handle_request(). It says IDLE when ready. Runs until
 * QUIT, EOF on the channel, a limit (exit 3), or a failure. Never returns:
 * it calls _exit() with 0 or a TUSK_PHP_WORKER_* code. */
#ifndef TUSK_PROC_WORKER_H
#define TUSK_PROC_WORKER_H

#include "conf/conf.h"

struct tusk_slot_s;

void tusk_worker_main(const tusk_conf_t *conf, int chan_fd, int index) __attribute__((noreturn));

/* A direct-mode worker: runs its own HTTP loop on the inherited listening
 * socket and PHP inline (src/proc/direct.c). SIGTERM drains it. Never
 * returns. */
void tusk_worker_direct_main(const tusk_conf_t *conf, int listen_fd, int index, struct tusk_slot_s *slot)
    __attribute__((noreturn));

#endif
