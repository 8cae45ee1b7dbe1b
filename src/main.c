/* tusk: entry point. Parses the configuration and runs the master. */
#include <stdio.h>

#include "conf/conf.h"
#include "core/common.h"
#include "core/log.h"
#include "proc/master.h"

const char *tusk_php_version(void);

int main(int argc, char **argv) {
  tusk_conf_t conf;
  char err[512];
  if (tusk_conf_parse(&conf, argc, argv, err, sizeof err) != 0) {
    fprintf(stderr, "tusk: %s\n", err);
    tusk_conf_dispose(&conf);
    return 2;
  }
  if (conf.cmd == TUSK_CMD_HELP) {
    tusk_conf_print_help();
    tusk_conf_dispose(&conf);
    return 0;
  }
  if (conf.cmd == TUSK_CMD_VERSION) {
    printf("tusk %s (PHP %s)\n", TUSK_VERSION, tusk_php_version());
    tusk_conf_dispose(&conf);
    return 0;
  }
  tusk_log_level_t lvl;
  if (tusk_log_parse_level(conf.log_level, &lvl) != 0) {
    fprintf(stderr, "tusk: --log-level must be debug, info, warn or error, got '%s'\n", conf.log_level);
    tusk_conf_dispose(&conf);
    return 2;
  }
  tusk_log_set_level(lvl);
  int rc = tusk_master_run(&conf, argv[0]);
  tusk_conf_dispose(&conf);
  return rc;
}
