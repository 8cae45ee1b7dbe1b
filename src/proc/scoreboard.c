#include "proc/scoreboard.h"

#include <string.h>
#include <sys/mman.h>
#include <time.h>

tusk_slot_t *tusk_board;
int tusk_board_slots;

tusk_slot_t *tusk_scoreboard_create(int n) {
  void *p = mmap(NULL, sizeof(tusk_slot_t) * (size_t)n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  memset(p, 0, sizeof(tusk_slot_t) * (size_t)n);
  tusk_board = p;
  tusk_board_slots = n;
  return p;
}

void tusk_scoreboard_destroy(tusk_slot_t *b, int n) {
  if (b) munmap(b, sizeof(tusk_slot_t) * (size_t)n);
}

uint64_t tusk_monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
