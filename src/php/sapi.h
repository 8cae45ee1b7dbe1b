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

/* Runs one request. vars and body point into the REQ frame. Writes the
 * whole response, then END and IDLE frames, to the sink. Returns 0, or a
 * negative code when the sink broke (a pooled worker then exits). Not
 * reentrant: never call it from a sink callback. */
int tusk_php_run(const tusk_php_sink_t *sink, uint16_t seq, const tusk_chan_var_t *vars, int nvars,
                 const char *body, size_t bodylen);

#endif
