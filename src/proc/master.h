/* The master process: starts PHP once, forks and supervises the PHP
 * workers, and runs the HTTP event loop. Returns the process exit code. */
#ifndef TUSK_PROC_MASTER_H
#define TUSK_PROC_MASTER_H

#include "conf/conf.h"

int tusk_master_run(tusk_conf_t *conf, const char *argv0);

#endif
