/* tusk: entry point. Parses the configuration and runs the master. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/conf.h"
#include "core/common.h"
#include "core/log.h"
#include "net/tls.h"
#include "proc/app_master.h"
#include "proc/master.h"

const char *tusk_php_version(void);

/* tusk cert [DIR] [NAME...]: a self-signed certificate for local HTTPS. */
static int make_cert(int argc, char **argv) {
  const char *dir = argc > 2 && argv[2][0] != '-' ? argv[2] : "tusk-cert";
  if (argc > 2 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
    printf("usage: tusk cert [DIR] [NAME...]\n"
           "Writes DIR/localhost.pem and DIR/localhost-key.pem (default DIR: ./tusk-cert), a self-signed\n"
           "certificate for localhost, 127.0.0.1, ::1 and any extra NAMEs, valid for one year.\n");
    return 0;
  }
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "tusk: cannot create %s: %s\n", dir, strerror(errno));
    return 1;
  }
  char cert[4096], key[4096], err[512];
  snprintf(cert, sizeof cert, "%s/localhost.pem", dir);
  snprintf(key, sizeof key, "%s/localhost-key.pem", dir);
  const char *const *extra = argc > 3 ? (const char *const *)argv + 3 : NULL;
  if (tusk_tls_make_self_signed(cert, key, extra, argc > 3 ? (size_t)(argc - 3) : 0, err, sizeof err) != 0) {
    fprintf(stderr, "tusk: %s\n", err);
    return 1;
  }
  printf("Wrote %s and %s (self-signed, for local development only).\n\n"
         "Serve HTTPS (and HTTP/2) with:\n"
         "  tusk serve --tls-cert %s --tls-key %s      # https://localhost:8443\n\n"
         "Trust it on this machine (Debian/Ubuntu; curl, PHP and most tools):\n"
         "  sudo cp %s /usr/local/share/ca-certificates/tusk-localhost.crt && sudo update-ca-certificates\n"
         "or per command: curl --cacert %s https://localhost:8443/\n"
         "Browsers: import %s as a trusted authority (Chrome: Settings > Privacy and security > Security >\n"
         "Manage certificates; Firefox: Settings > Certificates > View Certificates > Authorities > Import).\n",
         cert, key, cert, key, cert, cert, cert);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "cert")) return make_cert(argc, argv);
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
  if (conf.cmd == TUSK_CMD_RUN && strcmp(conf.app_action, "start") != 0) {
    int rc = tusk_app_control(&conf);
    tusk_conf_dispose(&conf);
    return rc;
  }
  if (conf.log_file && !freopen(conf.log_file, "a", stderr)) {
    fprintf(stdout, "tusk: cannot open the log file %s: %s\n", conf.log_file, strerror(errno));
    tusk_conf_dispose(&conf);
    return 2;
  }
  if (conf.cmd == TUSK_CMD_RUN && conf.daemon) {
    /* Detach: the parent returns once the child runs on its own. */
    pid_t pid = fork();
    if (pid < 0) {
      fprintf(stderr, "tusk: cannot fork: %s\n", strerror(errno));
      return 1;
    }
    if (pid > 0) {
      printf("tusk run %s started in the background (pid file %s)\n", conf.app_script, conf.pid_file);
      tusk_conf_dispose(&conf);
      return 0;
    }
    setsid();
    if (fork() > 0) _exit(0);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      if (!conf.log_file) dup2(null, 2);
      if (null > 2) close(null);
    }
  }
  int rc = conf.cmd == TUSK_CMD_RUN ? tusk_app_master_run(&conf, argv[0]) : tusk_master_run(&conf, argv[0]);
  tusk_conf_dispose(&conf);
  return rc;
}
