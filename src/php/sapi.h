/* Tusk's PHP SAPI: the only code that includes Zend headers.
 *
 * The master calls tusk_php_startup() once, before forking workers, so that
 * OPcache and APCu map their shared memory once and every worker shares it.
 * The SAPI registers itself as "fpm-fcgi": OPcache only enables itself
 * under SAPI names it knows (not "embed"), and Tusk runs scripts the way
 * php-fpm behind nginx does, so applications take their php-fpm code paths
 * (a "cli-server" name made some take their `php -S` router branch).
 * php_sapi_name() and PHP_SAPI therefore return "fpm-fcgi"; docs/php.md
 * explains this.
 *
 * Workers call tusk_php_run() for each request. The SAPI writes the
 * response as channel frames (HEAD, BODY, END, IDLE) to a sink: the
 * channel to the master (pooled mode), or the connection itself (direct
 * mode). */
#ifndef TUSK_PHP_SAPI_H
#define TUSK_PHP_SAPI_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "proc/channel.h"

/* Starts the PHP engine (module startup). Returns 0, or -1 after logging why. */
int tusk_php_startup(const tusk_conf_t *conf, const char *argv0);
void tusk_php_shutdown(void);

/* In a new worker, after it installed its signal handlers and before its
 * first request: makes PHP's per-request signal handling forward to them. */
void tusk_php_worker_signals_ready(void);

/* Worker mode: call before the process blocks waiting for its next
 * request. Disarms max_execution_time, which stays armed between requests
 * that follow each other at once (each re-arms it), saving a system call
 * per request under load. Not from a signal handler. */
void tusk_php_worker_idle(void);

/* In the master, before a reload forks new workers: schedules an OPcache
 * restart (runs opcache_reset() in a request of its own; no user code).
 * Until the restart happens, OPcache serves no cached scripts, so every
 * new worker runs the code on disk. */
void tusk_php_opcache_reset(void);

/* Where a request's response frames go. */
typedef struct tusk_php_sink_s {
  /* Takes frames (HEAD, BODY, END, IDLE; see proc/channel.h) in order.
   * Returns 0, or a negative code when the destination is gone. */
  int (*write)(void *ctx, const char *frames, size_t len);
  /* Returns 1 once the client went away (connection_aborted()). Called
   * when the script flushes. */
  int (*aborted)(void *ctx, uint16_t seq);
  void *ctx;
} tusk_php_sink_t;

/* One request: where its response goes, and the REQ frame's variables
 * and body (pointers into the frame; valid while the request runs). */
typedef struct tusk_php_job_s {
  const tusk_php_sink_t *sink;
  uint16_t seq;
  const tusk_chan_var_t *vars;
  int nvars;
  const char *body;
  size_t bodylen;
} tusk_php_job_t;

/* Runs one request (a classic script). Writes the
 * whole response, then END and IDLE frames, to the sink. Returns 0, or a
 * negative code when the sink broke (a pooled worker then exits). Not
 * reentrant: never call it from a sink callback. */
int tusk_php_run(const tusk_php_job_t *job);

/* The next tusk_php_run() is this worker's last: no IDLE frame after it. */
void tusk_php_set_last_request(int last);

/* ---- worker mode ----------------------------------------------------------- */

typedef struct tusk_php_worker_limits_s {
  uint64_t max_requests; /* 0: unlimited */
  size_t max_memory;     /* PHP memory after a request, bytes; 0: unlimited */
  int debug_state;       /* log globals and static properties a request changed */
} tusk_php_worker_limits_t;

/* How a worker script gets its requests (pooled: the channel; direct: the
 * worker's own event loop). */
typedef struct tusk_php_worker_io_s {
  /* Blocks until a request arrives and fills job (valid until the next
   * call); returns 0 when the
   * worker must stop (frankenphp_handle_request() then returns false). */
  int (*next)(void *ctx, tusk_php_job_t *job);
  void (*ready)(void *ctx); /* booted: the first next() follows */
  void (*done)(void *ctx);  /* a request ended (its frames were written) */
  void (*stopping)(void *ctx); /* this is the last request: before its END */
  void *ctx;
  tusk_php_worker_limits_t limits;
} tusk_php_worker_io_t;

#define TUSK_PHP_WORKER_RECYCLE 3      /* limits reached: replace the worker */
#define TUSK_PHP_WORKER_FAILED 4       /* a handler threw, or the script ended early */
#define TUSK_PHP_WORKER_BOOT_FAILED 5  /* the script ended before handling a request */

/* Runs a worker script: it boots, then loops on frankenphp_handle_request()
 * (or Tusk\handle_request()), each call serving one request from io.
 * Returns 0 when it stopped because io said so, or one of the
 * TUSK_PHP_WORKER_* codes above (also the worker process's exit code). */
int tusk_php_worker_run(const char *script, const tusk_php_worker_io_t *io);

/* In a worker just forked from the template: runs the callbacks the script
 * registered with Tusk\after_fork(). */
void tusk_php_after_fork(void);

#endif
