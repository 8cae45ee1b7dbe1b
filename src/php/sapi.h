/* Tusk's PHP SAPI: the only code that includes Zend headers.
 *
 * The master calls tusk_php_startup() once, before forking workers, so that
 * OPcache and APCu map their shared memory once and every worker shares it.
 * The SAPI registers itself as "cli-server" because OPcache only enables
 * itself under SAPI names it knows; php_sapi_name() and PHP_SAPI therefore
 * return "cli-server" (as under NGINX Unit). docs/php.md explains this.
 *
 * Workers call tusk_php_run() for each request. The SAPI writes the
 * response as channel frames (HEAD, BODY, END, IDLE) straight to chan_fd
 * with blocking writes; the master never waits on them. */
#ifndef TUSK_PHP_SAPI_H
#define TUSK_PHP_SAPI_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "proc/channel.h"

/* Starts the PHP engine (module startup). Returns 0, or -1 after logging why. */
int tusk_php_startup(const tusk_conf_t *conf, const char *argv0);
void tusk_php_shutdown(void);

/* In a worker: reset OPcache at the start of the next request (used by the
 * first worker of a reload, so new code is compiled at once). */
void tusk_php_schedule_opcache_reset(void);

/* Runs one request in a worker. vars and body point into the REQ frame.
 * Writes the whole response, then END and IDLE frames, to chan_fd.
 * Returns 0, or a negative code when the channel broke (the worker should
 * exit). */
int tusk_php_run(int chan_fd, uint16_t seq, const tusk_chan_var_t *vars, int nvars, const char *body,
                 size_t bodylen);

#endif
