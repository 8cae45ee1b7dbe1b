/* `tusk run app.php`: the master of event-driven PHP services (see
 * app_master.c and docs/event-servers.md). */
#ifndef TUSK_PROC_APP_MASTER_H
#define TUSK_PROC_APP_MASTER_H

#include "conf/conf.h"

/* Serves conf->app_script until SIGTERM/SIGINT. Returns the exit code. */
int tusk_app_master_run(tusk_conf_t *conf, const char *argv0);

/* `tusk run app.php stop|reload|status`: signals the running master found
 * through conf->pid_file. Returns the exit code. */
int tusk_app_control(const tusk_conf_t *conf);

#endif
