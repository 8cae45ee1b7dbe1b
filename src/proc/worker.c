#include "proc/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"
#include "php/sapi.h"
#include "proc/channel.h"

#define TUSK_MAX_VARS 512

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int chan_write(void *ctx, const char *frames, size_t len) { return write_all(*(int *)ctx, frames, len); }

/* Checks, without blocking, whether the master sent ABORT for this request
 * (or closed the channel). */
static int chan_aborted(void *ctx, uint16_t seq) {
  int fd = *(int *)ctx;
  char hdr[TUSK_CHAN_HDR];
  ssize_t n = recv(fd, hdr, sizeof hdr, MSG_DONTWAIT | MSG_PEEK);
  if (n == 0) return 1;
  if (n == (ssize_t)sizeof hdr) {
    tusk_chan_frame_t f;
    memcpy(&f, hdr, sizeof hdr);
    if (f.type == TUSK_CHAN_ABORT) {
      n = recv(fd, hdr, sizeof hdr, 0);
      return f.seq == seq;
    }
  }
  return 0;
}

void tusk_worker_main(int chan_fd, int index) {
  char role[32];
  snprintf(role, sizeof role, "worker %d", index);
  tusk_log_set_role(role);
  prctl(PR_SET_NAME, "tusk-worker", 0, 0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* never outlive the master */
  /* The master handles terminal signals and tells workers what to do. */
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR2, SIG_IGN);
  signal(SIGTERM, SIG_DFL);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);

  tusk_buf_t in;
  tusk_buf_init(&in);
  static tusk_chan_var_t vars[TUSK_MAX_VARS + 64];
  int code = 0;
  for (;;) {
    tusk_chan_frame_t f;
    const char *payload;
    int n = tusk_chan_get(in.data, in.len, &f, &payload);
    if (n == TUSK_AGAIN) {
      if (tusk_buf_reserve(&in, 64 * 1024) != 0) {
        code = 1;
        break;
      }
      ssize_t r = read(chan_fd, in.data + in.len, in.cap - in.len - 1);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break; /* master closed the channel: exit quietly */
      in.len += (size_t)r;
      continue;
    }
    if (n < 0) {
      TUSK_ERROR("bad frame from the master; exiting");
      code = 1;
      break;
    }
    if (f.type == TUSK_CHAN_QUIT) break;
    if (f.type == TUSK_CHAN_REQ) {
      const char *body;
      size_t bodylen;
      int nv = tusk_chan_req_parse(payload, f.len, vars, TUSK_ARRAY_SIZE(vars), &body, &bodylen);
      if (nv < 0) {
        TUSK_ERROR("malformed request frame from the master; exiting");
        code = 1;
        break;
      }
      tusk_php_sink_t sink = {chan_write, chan_aborted, &chan_fd};
      if (tusk_php_run(&sink, f.seq, vars, nv, body, bodylen) != 0) break;
    }
    /* ABORT for a request that already ended is dropped. */
    tusk_buf_consume(&in, (size_t)n);
    if (in.cap > 1024 * 1024 && in.len < 64 * 1024) {
      tusk_buf_t copy;
      tusk_buf_init(&copy);
      tusk_buf_append(&copy, in.data, in.len);
      tusk_buf_dispose(&in);
      in = copy;
    }
  }
  tusk_buf_dispose(&in);
  _exit(code);
}
