#include "proc/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"
#include "conf/conf.h"
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

/* The channel's read side: frames from the master, one REQ at a time. */
typedef struct chan_reader_s {
  int fd;
  tusk_buf_t in;
  size_t consumed_next; /* bytes of the REQ handed out last, dropped on the next call */
  tusk_chan_var_t vars[TUSK_MAX_VARS + 64];
  tusk_php_sink_t sink;
  int failed;
} chan_reader_t;

/* Blocks until a REQ frame arrives; returns 1 with job filled, 0 on QUIT or
 * when the master closed the channel, -1 on a broken frame. */
static int chan_next_req(chan_reader_t *r, tusk_php_job_t *job) {
  tusk_buf_consume(&r->in, r->consumed_next);
  r->consumed_next = 0;
  if (r->in.cap > 1024 * 1024 && r->in.len < 64 * 1024) {
    tusk_buf_t copy;
    tusk_buf_init(&copy);
    tusk_buf_append(&copy, r->in.data, r->in.len);
    tusk_buf_dispose(&r->in);
    r->in = copy;
  }
  for (;;) {
    tusk_chan_frame_t f;
    const char *payload;
    int n = tusk_chan_get(r->in.data, r->in.len, &f, &payload);
    if (n == TUSK_AGAIN) {
      if (tusk_buf_reserve(&r->in, 64 * 1024) != 0) return -1;
      ssize_t got = read(r->fd, r->in.data + r->in.len, r->in.cap - r->in.len - 1);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return 0; /* the master closed the channel: exit quietly */
      r->in.len += (size_t)got;
      continue;
    }
    if (n < 0) {
      TUSK_ERROR("bad frame from the master; exiting");
      return -1;
    }
    if (f.type == TUSK_CHAN_QUIT) return 0;
    if (f.type != TUSK_CHAN_REQ) { /* an ABORT for a request that already ended */
      tusk_buf_consume(&r->in, (size_t)n);
      continue;
    }
    const char *body;
    size_t bodylen;
    int nv = tusk_chan_req_parse(payload, f.len, r->vars, TUSK_ARRAY_SIZE(r->vars), &body, &bodylen);
    if (nv < 0) {
      TUSK_ERROR("malformed request frame from the master; exiting");
      return -1;
    }
    job->sink = &r->sink;
    job->seq = f.seq;
    job->vars = r->vars;
    job->nvars = nv;
    job->body = body;
    job->bodylen = bodylen;
    r->consumed_next = (size_t)n;
    return 1;
  }
}

/* Tells the master this worker takes requests now. */
static void say_ready(chan_reader_t *r) {
  tusk_buf_t b;
  tusk_buf_init(&b);
  tusk_chan_put(&b, TUSK_CHAN_IDLE, 0, 0, NULL, 0);
  if (write_all(r->fd, b.data, b.len) != 0) r->failed = 1;
  tusk_buf_dispose(&b);
}

static int io_next(void *ctx, tusk_php_job_t *job) {
  chan_reader_t *r = ctx;
  int rc = chan_next_req(r, job);
  if (rc < 0) r->failed = 1;
  return rc > 0;
}

static void io_ready(void *ctx) { say_ready(ctx); }

static chan_reader_t reader;

void tusk_worker_main(const tusk_conf_t *conf, int chan_fd, int index) {
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

  chan_reader_t *r = &reader;
  r->fd = chan_fd;
  tusk_buf_init(&r->in);
  r->sink = (tusk_php_sink_t){chan_write, chan_aborted, &r->fd};

  if (conf->worker_script) {
    tusk_php_worker_io_t io = {io_next, io_ready, NULL, r, {(uint64_t)conf->max_requests, conf->max_worker_memory, conf->debug_state}};
    int rc = tusk_php_worker_run(conf->worker_script, &io);
    _exit(r->failed ? 1 : rc);
  }

  say_ready(r);
  uint64_t served = 0;
  int code = 0;
  for (;;) {
    tusk_php_job_t job;
    int rc = chan_next_req(r, &job);
    if (rc <= 0) {
      code = rc < 0;
      break;
    }
    if (tusk_php_run(job.sink, job.seq, job.vars, job.nvars, job.body, job.bodylen) != 0) break;
    if (conf->max_requests && ++served >= (uint64_t)conf->max_requests) {
      TUSK_INFO("served %llu requests (--max-requests %d): recycling this worker", (unsigned long long)served,
                conf->max_requests);
      code = TUSK_PHP_WORKER_RECYCLE;
      break;
    }
  }
  _exit(code);
}
