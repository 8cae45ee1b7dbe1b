#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/common.h"

static tusk_log_level_t log_level = TUSK_LOG_INFO;
static char log_role[32] = "master";

void tusk_log_set_level(tusk_log_level_t level) { log_level = level; }

int tusk_log_parse_level(const char *s, tusk_log_level_t *out) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(names); i++) {
    if (strcmp(s, names[i]) == 0) {
      *out = (tusk_log_level_t)i;
      return 0;
    }
  }
  return TUSK_EPROTO;
}

void tusk_log_set_role(const char *role) {
  snprintf(log_role, sizeof log_role, "%s", role);
}

int tusk_log_enabled(tusk_log_level_t level) { return level >= log_level; }

void tusk_log(tusk_log_level_t level, const char *fmt, ...) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  if (level < log_level) return;
  char line[2048];
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ tusk %s[%d] %s: ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                   tm.tm_sec, (int)(tv.tv_usec / 1000), log_role, (int)getpid(), names[level]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : TUSK_MIN((size_t)m, sizeof line - (size_t)n - 2));
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
