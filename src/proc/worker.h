/* A PHP worker process: reads REQ frames from its channel, runs PHP, writes
 * the response frames back. Runs until QUIT, EOF on the channel, or a
 * fatal channel error. Never returns: it calls _exit(). */
#ifndef TUSK_PROC_WORKER_H
#define TUSK_PROC_WORKER_H

void tusk_worker_main(int chan_fd, int index) __attribute__((noreturn));

#endif
