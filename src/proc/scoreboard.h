/* The scoreboard: one slot per worker process in memory shared between the
 * master and the workers (MAP_SHARED, mapped before fork). A direct-mode
 * worker writes when its current request started and what it is, with no
 * system call; the master reads it to enforce --request-timeout and to name
 * the request in a crash log. */
#ifndef TUSK_PROC_SCOREBOARD_H
#define TUSK_PROC_SCOREBOARD_H

#include <stdint.h>
#include <sys/types.h>

typedef struct tusk_slot_s {
  volatile pid_t pid;               /* 0: free */
  volatile uint64_t busy_since_ms;  /* monotonic ms; 0 when idle */
  char what[112];                   /* "GET /path" of the running request */
  volatile int conns;               /* open client connections (direct mode) */
} tusk_slot_t;

/* The board of this server (set by the master, inherited by workers). */
extern tusk_slot_t *tusk_board;
extern int tusk_board_slots;

/* Maps n slots. Returns NULL on failure. Call before forking. */
tusk_slot_t *tusk_scoreboard_create(int n);
void tusk_scoreboard_destroy(tusk_slot_t *b, int n);
uint64_t tusk_monotonic_ms(void);

#endif
