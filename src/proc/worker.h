/* A PHP worker process: reads REQ frames from in_fd, runs PHP, writes the
 * response frames to out_fd (the channel's two sockets, proc/channel.h). Classic mode runs a script per request; with
 * conf->worker_script the worker script runs once and takes requests
 * through frankenphp_handle_request(). It says IDLE when ready. Runs until
 * EOF on the channel (the master closed it), a limit (exit 3), or a failure. Never returns:
 * it calls _exit() with 0 or a TUSK_PHP_WORKER_* code. With index < 0 it
 * is the template (--worker-template): it boots the worker script, says
 * READY on its control channel (in_fd == out_fd) and forks workers on
 * request. */
#ifndef TUSK_PROC_WORKER_H
#define TUSK_PROC_WORKER_H

#include <stdint.h>

#include "conf/conf.h"

struct tusk_slot_s;
struct tusk_tls_ctx_s;

void tusk_worker_main(const tusk_conf_t *conf, int in_fd, int out_fd, int index) __attribute__((noreturn));

/* The template's control messages (master <-> template, fixed size). */
enum { TUSK_TPL_FORK = 1, TUSK_TPL_READY = 2, TUSK_TPL_FORKED = 3 };
typedef struct tusk_tpl_msg_s {
  int32_t type;
  int32_t index;
  int32_t pid;
} tusk_tpl_msg_t;

/* A direct-mode worker: runs its own HTTP loop on the inherited listening
 * socket and PHP inline (src/proc/direct.c). SIGTERM drains it. Never
 * returns. */
void tusk_worker_direct_main(const tusk_conf_t *conf, int listen_fd, int tls_fd, struct tusk_tls_ctx_s *tls,
                             int index, struct tusk_slot_s *slot)
    __attribute__((noreturn));

#endif
