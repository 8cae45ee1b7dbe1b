/* The PHP side of `tusk run` (event-driven services): the internal
 * functions that src/php/runtime/app.php builds Tusk\Worker, Connection and
 * Timer on, and the runner of an application script.
 *
 * A process of `tusk run` talks to the master over one channel (proc/
 * channel.h framing) with the TUSK_APP_* frames below; the payload of each
 * starts with the connection id (u64, host order), the frame's seq is the
 * service number. */
#ifndef TUSK_PHP_APP_H
#define TUSK_PHP_APP_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum {
  /* master -> worker */
  TUSK_APP_EV_OPEN = 20,  /* data: the peer's address "ip:port" */
  TUSK_APP_EV_DATA = 21,  /* data: one message (text/frame/websocket) or a chunk (tcp) */
  TUSK_APP_EV_CLOSE = 22,
  TUSK_APP_EV_FULL = 23,  /* the connection's send buffer passed its bound */
  TUSK_APP_EV_DRAIN = 24, /* ... and is below half of it again */
  TUSK_APP_EV_STOP = 25,  /* finish: onWorkerStop, then exit */
  TUSK_APP_EV_ERROR = 26, /* data: what went wrong (e.g. a message too big) */
  TUSK_APP_EV_DGRAM = 27, /* udp: id 0; data: u16 BE address length, "ip:port", payload */
  /* worker -> master */
  TUSK_APP_DECLARE = 40, /* the probe's service list, see app_master.c */
  TUSK_APP_CMD_SEND = 41,
  TUSK_APP_CMD_CLOSE = 42,
  TUSK_APP_CMD_PAUSE = 43,
  TUSK_APP_CMD_RESUME = 44,
  TUSK_APP_CMD_JOIN = 45,
  TUSK_APP_CMD_LEAVE = 46,
  TUSK_APP_CMD_BIND = 47,
  TUSK_APP_CMD_SEND_GROUP = 48, /* id unused; data: u16 BE name length, name, message */
  TUSK_APP_CMD_SEND_UID = 49,   /* same layout */
  TUSK_APP_CMD_BCAST = 50,      /* id: service number, 0xffff for all */
  TUSK_APP_CMD_SEND_RAW = 51,   /* bytes as they are, no framing */
  TUSK_APP_CMD_SEND_BIN = 52,   /* websocket: a binary message */
  TUSK_APP_CMD_SENDTO = 53,     /* udp: id is the service; data as in EV_DGRAM */
  TUSK_APP_CMD_ADOPT = 54,      /* control socket only: a client socket (SCM_RIGHTS) and the bytes read */
  TUSK_APP_READY = 60,          /* onWorkerStart ran */
};

/* Direct mode (`tusk run --mode direct`): the worker process owns its
 * connections. Its event loop (proc/app_master.c) runs inside
 * Tusk\Internal\app_wait() through these hooks instead of the worker
 * reading events from the master's channel; the frames are the same. */
typedef struct tusk_app_local_s {
  /* Runs the loop once, blocking up to timeout_ms (-1: no limit, 0: do not
   * block). Returns 1 when the timeout passed. */
  int (*run)(int timeout_ms);
  /* The loop's descriptor (readable when it has work) and its own next
   * timeout, to poll it beside PHP streams. */
  int (*backend_fd)(void);
  int (*backend_timeout)(void);
  /* The worker's command frames (what it would send the master). */
  void (*commands)(const char *frames, size_t len);
  /* Appends the event frames produced since the last call to into. */
  void (*take)(tusk_buf_t *into);
} tusk_app_local_t;

/* Runs the application script in this (forked) process: the runtime
 * (src/php/runtime/app.php) first, then `script`. role -1: the probe, which
 * only reports the declared services on fd and returns; otherwise the
 * worker number, which serves events from fd until the master says stop
 * (or, with local non-NULL, from its own loop; fd then only carries READY
 * and the commands other workers must see). Output of the script goes to
 * stdout. Returns the exit code for the process. */
int tusk_php_app_run(const char *runtime, const char *script, int fd, int role, const tusk_app_local_t *local);

#endif
