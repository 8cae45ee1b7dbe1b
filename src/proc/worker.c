#include "proc/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"
#include "conf/conf.h"
#include "php/sapi.h"
#include "proc/channel.h"


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

/* The channel's read side: frames from the master, one REQ at a time. */
typedef struct chan_reader_s {
  int fd;     /* master -> worker: REQ, ABORT (the template: its control channel) */
  int out_fd; /* worker -> master: HEAD, BODY, END, IDLE (the template: the same fd) */
  tusk_buf_t in;
  size_t consumed_next; /* bytes of the REQ handed out last, dropped on the next call */
  tusk_chan_var_t *vars; /* grown to the largest request seen */
  size_t nvars_cap;
  tusk_php_sink_t sink;
  int failed;
} chan_reader_t;

static int chan_write(void *ctx, const char *frames, size_t len) {
  return write_all(((chan_reader_t *)ctx)->out_fd, frames, len);
}

/* Checks, without blocking, whether the master sent ABORT for this request
 * (or closed the channel). */
static int chan_aborted(void *ctx, uint16_t seq) {
  int fd = ((chan_reader_t *)ctx)->fd;
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

/* Blocks until a REQ frame arrives; returns 1 with job filled, 0
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
      /* Blocking here is cheap because fd carries only the master's
       * frames: our responses go out on out_fd, so the master reading
       * them does not wake this read (see proc/channel.h). */
      tusk_php_worker_idle();
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
    if (f.type != TUSK_CHAN_REQ) { /* an ABORT for a request that already ended */
      tusk_buf_consume(&r->in, (size_t)n);
      continue;
    }
    const char *body;
    size_t bodylen;
    int nv = tusk_chan_req_parse_all(payload, f.len, &r->vars, &r->nvars_cap, &body, &bodylen);
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
  if (write_all(r->out_fd, b.data, b.len) != 0) r->failed = 1;
  tusk_buf_dispose(&b);
}

static int io_next(void *ctx, tusk_php_job_t *job) {
  chan_reader_t *r = ctx;
  int rc = chan_next_req(r, job);
  if (rc < 0) r->failed = 1;
  return rc > 0;
}

static chan_reader_t reader;
static int template_mode;

/* ---- the template (boot once, fork many) --------------------------------
 *
 * With --worker-template the worker script boots in one process. At its
 * first frankenphp_handle_request() it becomes a template: on each FORK
 * request from the master it forks a worker (twice, so the worker is
 * re-parented to the master, a child subreaper) that returns into
 * frankenphp_handle_request() with the booted app copy-on-write, and sends
 * the master that worker's pid and channel (SCM_RIGHTS). */

/* Sends m with the worker's two channel ends: fds[0] (its responses), fds[1]
 * (its requests). */
static int send_forked(int ctrl, const tusk_tpl_msg_t *m, const int fds[2]) {
  struct iovec iov = {(void *)m, sizeof *m};
  char cbuf[CMSG_SPACE(2 * sizeof(int))];
  memset(cbuf, 0, sizeof cbuf);
  struct msghdr mh = {0};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
  memcpy(CMSG_DATA(cm), fds, 2 * sizeof(int));
  ssize_t n;
  do {
    n = sendmsg(ctrl, &mh, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == (ssize_t)sizeof *m ? 0 : -1;
}

/* Returns in a freshly forked worker (with r set to its own channel), or
 * exits the template when the master closes the control channel. */
static void template_loop(chan_reader_t *r) {
  int ctrl = r->fd;
  pid_t master = getppid();
  tusk_log_set_role("template");
  prctl(PR_SET_NAME, "tusk-template", 0, 0, 0);
  tusk_tpl_msg_t ready = {TUSK_TPL_READY, -1, getpid()};
  if (write_all(ctrl, (const char *)&ready, sizeof ready) != 0) _exit(1);
  for (;;) {
    tusk_tpl_msg_t m;
    ssize_t n = read(ctrl, &m, sizeof m);
    if (n < 0 && errno == EINTR) continue;
    if (n != (ssize_t)sizeof m) _exit(0); /* the master is done with this template */
    if (m.type != TUSK_TPL_FORK) continue;
    int sv[2], rq[2], pp[2]; /* sv: worker -> master, rq: master -> worker */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) continue;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rq) != 0) {
      close(sv[0]);
      close(sv[1]);
      continue;
    }
    if (pipe2(pp, O_CLOEXEC) != 0) {
      close(sv[0]);
      close(sv[1]);
      close(rq[0]);
      close(rq[1]);
      continue;
    }
    pid_t mid = fork();
    if (mid == 0) {
      pid_t w = fork();
      if (w != 0) {
        ssize_t wr = write(pp[1], &w, sizeof w);
        (void)wr;
        _exit(0);
      }
      /* The worker: wait until re-parented to the master, then tie our
       * life to it. */
      while (getppid() != master && getppid() != 1) usleep(100);
      prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      if (getppid() != master) _exit(0);
      close(ctrl);
      close(pp[0]);
      close(pp[1]);
      close(sv[0]);
      close(rq[0]);
      char role[32];
      snprintf(role, sizeof role, "worker %d", m.index);
      tusk_log_set_role(role);
      prctl(PR_SET_NAME, "tusk-worker", 0, 0, 0);
      r->fd = rq[1];
      r->out_fd = sv[1];
      tusk_buf_reset(&r->in);
      r->consumed_next = 0;
      tusk_php_after_fork();
      say_ready(r);
      return;
    }
    close(pp[1]);
    close(sv[1]);
    close(rq[1]);
    pid_t wpid = -1;
    if (mid > 0) {
      ssize_t rd;
      do {
        rd = read(pp[0], &wpid, sizeof wpid);
      } while (rd < 0 && errno == EINTR);
      if (rd != (ssize_t)sizeof wpid) wpid = -1;
      waitpid(mid, NULL, 0);
    }
    close(pp[0]);
    tusk_tpl_msg_t out = {TUSK_TPL_FORKED, m.index, wpid};
    int ends[2] = {sv[0], rq[0]};
    if (wpid > 0 && send_forked(ctrl, &out, ends) != 0) _exit(1);
    close(sv[0]);
    close(rq[0]);
  }
}

static void io_ready(void *ctx) {
  if (template_mode) {
    template_loop(ctx);
    return;
  }
  say_ready(ctx);
}

void tusk_worker_main(const tusk_conf_t *conf, int in_fd, int out_fd, int index) {
  template_mode = index < 0;
  char role[32];
  snprintf(role, sizeof role, "worker %d", index);
  tusk_log_set_role(role);
  prctl(PR_SET_NAME, "tusk-worker", 0, 0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* never outlive the master */
  /* The master handles terminal signals and tells workers what to do. */
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR2, SIG_IGN);
  /* SIGTERM to the whole group (systemd, kill 0): the master drains and
   * tells the workers; a worker must not die under a request. */
  signal(SIGTERM, SIG_IGN);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  tusk_php_worker_signals_ready();

  chan_reader_t *r = &reader;
  r->fd = in_fd;
  r->out_fd = out_fd;
  tusk_buf_init(&r->in);
  r->sink = (tusk_php_sink_t){chan_write, chan_aborted, r};

  if (conf->worker_script) {
    tusk_php_worker_io_t io = {io_next, io_ready, NULL, NULL, r,
                               {(uint64_t)conf->max_requests, conf->max_worker_memory, conf->debug_state}};
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
    int last = conf->max_requests && served + 1 >= (uint64_t)conf->max_requests;
    tusk_php_set_last_request(last);
    if (tusk_php_run(&job) != 0) break;
    if (conf->max_requests && ++served >= (uint64_t)conf->max_requests) {
      TUSK_INFO("served %llu requests (--max-requests %d): recycling this worker", (unsigned long long)served,
                conf->max_requests);
      code = TUSK_PHP_WORKER_RECYCLE;
      break;
    }
  }
  _exit(code);
}
