/* Logging to stderr (the default sink) with a level and a process tag.
 *
 * Lines look like: 2026-11-22T04:20:00Z tusk[1234] error: message
 * Safe to call from any callback, never from a signal handler. */
#ifndef TUSK_CORE_LOG_H
#define TUSK_CORE_LOG_H

typedef enum {
  TUSK_LOG_DEBUG = 0,
  TUSK_LOG_INFO = 1,
  TUSK_LOG_WARN = 2,
  TUSK_LOG_ERROR = 3,
} tusk_log_level_t;

void tusk_log_set_level(tusk_log_level_t level);
/* Parses "debug", "info", "warn", "error"; returns 0 or TUSK_EPROTO. */
int tusk_log_parse_level(const char *s, tusk_log_level_t *out);
/* A short role name printed in every line, e.g. "master" or "worker 3". */
void tusk_log_set_role(const char *role);
int tusk_log_enabled(tusk_log_level_t level);
void tusk_log(tusk_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define TUSK_DEBUG(...) \
  do { if (tusk_log_enabled(TUSK_LOG_DEBUG)) tusk_log(TUSK_LOG_DEBUG, __VA_ARGS__); } while (0)
#define TUSK_INFO(...) tusk_log(TUSK_LOG_INFO, __VA_ARGS__)
#define TUSK_WARN(...) tusk_log(TUSK_LOG_WARN, __VA_ARGS__)
#define TUSK_ERROR(...) tusk_log(TUSK_LOG_ERROR, __VA_ARGS__)

#endif
