/* The unit tests' checks: CHECK(cond) and CHECK_EQ(a, b) count passes and
 * failures; a test's main() ends with TUSK_CHECK_REPORT(), which prints
 * "N passed, M failed" and returns non-zero on failure. One header per
 * test program (the counters are static). */
#ifndef TUSK_TESTS_UNIT_CHECK_H
#define TUSK_TESTS_UNIT_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (cond) {                                                             \
      passed++;                                                             \
    } else {                                                                \
      failed++;                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                       \
  } while (0)

#define CHECK_EQ(a, b)                                                               \
  do {                                                                               \
    long long a_ = (long long)(a), b_ = (long long)(b);                              \
    if (a_ == b_) {                                                                  \
      passed++;                                                                      \
    } else {                                                                         \
      failed++;                                                                      \
      fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, a_, \
              b_);                                                                   \
    }                                                                                \
  } while (0)

#define TUSK_CHECK_REPORT()                        \
  do {                                            \
    printf("%d passed, %d failed\n", passed, failed); \
    return failed ? 1 : 0;                        \
  } while (0)

#endif
