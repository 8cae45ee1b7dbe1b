/* Master: PHP engine start, worker supervision and the request queue.
 *
 * Signal handling follows nginx: libuv's signal watchers only turn signals
 * into loop events, and the loop acts on them. A worker that dies is
 * replaced; the request it held is answered with 502 (or 504 when we
 * killed it for running past --request-timeout). */
#include "proc/master.h"

#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "core/common.h"
#include "core/log.h"
#include "http/h1_conn.h"
#include "net/tls.h"
#include "net/server.h"
#include "php/sapi.h"
#include "proc/channel.h"
#include "proc/scoreboard.h"
#include "proc/worker.h"

typedef struct tusk_worker_s {
  int index;
  pid_t pid;
  int generation;
  uv_pipe_t pipe;    /* worker -> master: HEAD, BODY, END, IDLE (read) */
  uv_pipe_t req;     /* master -> worker: REQ, ABORT (written only; see proc/channel.h) */
  uv_timer_t timer;
  int handles_open;
  int pipe_closed;
  int reaped;
  int busy;
  int retiring;
  int timed_out;
  int in_idle;
  int lost_busy; /* the channel broke while a request ran (for the crash log) */
  tusk_slot_t *slot; /* direct mode */
  int recycled;      /* exited to be replaced (limits), not a failure */
  int ready;         /* said IDLE at least once */
  int handler_failed;
  int boot_failed;
  int paused;        /* its response waits for a slow client: pipe not read */
  tusk_buf_t in;
  tusk_http_job_t *job;
  uint64_t started_ms;
  uint64_t requests;
  char what[160];
  struct tusk_worker_s *next; /* all workers */
} tusk_worker_t;

typedef struct wwrite_s {
  uv_write_t w;
  tusk_buf_t buf;
} wwrite_t;

static struct {
  tusk_conf_t *conf;
  uv_loop_t *loop;
  tusk_http_ctx_t http;
  uv_tcp_t listener;
  int listening;
  tusk_worker_t *workers;
  tusk_worker_t **idle;
  size_t nidle, idle_cap;
  int generation;
  tusk_http_job_t *qhead, *qtail;
  int qlen;
  uv_signal_t sig[5];
  uv_timer_t drain_timer;
  uv_check_t unpause; /* runs while a worker is paused for a slow client */
  int npaused;
  int draining;
  int quick_deaths;
  int *keep_fds;
  size_t nkeep;
  int exit_code;
  int listen_fd;     /* pooled mode: the listening socket */
  int tls_listen_fd;
  uv_tcp_t tls_listener;
  int *tls_listen_fds; /* direct mode */
  tusk_tls_ctx_t *tls;
  int *listen_fds;   /* direct mode: one SO_REUSEPORT socket per worker index */
  tusk_slot_t *board; /* direct mode: one slot per worker process */
  int nslots;
  uv_timer_t watchdog;
  /* --worker-template: the process that boots the app once and forks the
   * workers (they become our children: we are a child subreaper). */
  struct {
    pid_t pid;
    uv_pipe_t *pipe; /* ipc: FORKED messages carry the worker's channel */
    int open;
    int ready;
    int generation;
    tusk_buf_t in;
    int *pending; /* worker indexes to fork once ready */
    int npending;
    uint64_t started_ms;
    int quick_deaths;
  } tpl;
  pid_t orphans[64]; /* reaped before the template told us about them */
  int norphans;
  uv_timer_t tpl_retry;
  uv_fs_event_t *watchers; /* --watch: one per folder */
  int nwatchers;
  uv_timer_t watch_debounce;
} M;

static void spawn(int index);
static void spawn_later(int index, uint64_t delay_ms);
static void pump_queue(void);

/* ---- fd hygiene -------------------------------------------------------------- */

/* Remembers the descriptors open right after PHP started (PHP's own, like
 * OPcache's lock file): a new worker keeps those and closes every other
 * (listeners, client connections, other workers' channels). */
static void snapshot_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return;
  int self = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd == self) continue;
    int *p = realloc(M.keep_fds, (M.nkeep + 1) * sizeof *p);
    if (!p) break;
    M.keep_fds = p;
    M.keep_fds[M.nkeep++] = fd;
  }
  closedir(d);
}

static void close_inherited_fds(int keep, int keep2) {
  int fds[4096];
  size_t n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d) return;
  int self = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < TUSK_ARRAY_SIZE(fds)) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd == self || fd == keep || fd == keep2) continue;
    int kept = 0;
    for (size_t i = 0; i < M.nkeep && !kept; i++) kept = M.keep_fds[i] == fd;
    if (!kept) fds[n++] = fd;
  }
  closedir(d);
  for (size_t i = 0; i < n; i++) close(fds[i]);
}

/* ---- idle stack ------------------------------------------------------------------ */

static void idle_push(tusk_worker_t *w) {
  if (w->in_idle) return;
  if (M.nidle == M.idle_cap) {
    size_t cap = M.idle_cap ? M.idle_cap * 2 : 16;
    tusk_worker_t **p = realloc(M.idle, cap * sizeof *p);
    if (!p) return;
    M.idle = p;
    M.idle_cap = cap;
  }
  M.idle[M.nidle++] = w;
  w->in_idle = 1;
}

static void idle_remove(tusk_worker_t *w) {
  if (!w->in_idle) return;
  for (size_t i = 0; i < M.nidle; i++) {
    if (M.idle[i] == w) {
      M.idle[i] = M.idle[--M.nidle];
      break;
    }
  }
  w->in_idle = 0;
}

/* ---- writing to a worker ------------------------------------------------------------ */

static void on_wwrite(uv_write_t *w, int status) {
  wwrite_t *r = (wwrite_t *)w;
  tusk_buf_dispose(&r->buf);
  free(r);
}

/* Sends buf to the worker (taking its storage). */
static void worker_send(tusk_worker_t *w, tusk_buf_t *buf) {
  if (w->pipe_closed) {
    tusk_buf_dispose(buf);
    return;
  }
  uv_buf_t ub = uv_buf_init(buf->data, (unsigned)buf->len);
  int n = uv_try_write((uv_stream_t *)&w->req, &ub, 1);
  if (n == (int)buf->len) {
    tusk_buf_reset(buf);
    return;
  }
  size_t off = n > 0 ? (size_t)n : 0;
  wwrite_t *r = malloc(sizeof *r);
  if (!r) return;
  r->buf = *buf;
  tusk_buf_init(buf);
  ub = uv_buf_init(r->buf.data + off, (unsigned)(r->buf.len - off));
  if (uv_write(&r->w, (uv_stream_t *)&w->req, &ub, 1, on_wwrite) != 0) {
    tusk_buf_dispose(&r->buf);
    free(r);
  }
}

/* ---- worker lifecycle ----------------------------------------------------------------- */

static void on_worker_handle_close(uv_handle_t *h) {
  tusk_worker_t *w = h->data;
  if (--w->handles_open > 0) return;
  tusk_buf_dispose(&w->in);
  free(w);
}

static void maybe_exit(void) {
  if (M.draining && M.http.nconns == 0 && M.workers == NULL) {
    TUSK_INFO("stopped");
    uv_stop(M.loop);
  }
}

/* Both the channel is closed and the process is reaped: forget the worker
 * and, unless it was retired, start its replacement. */
static void worker_gone(tusk_worker_t *w) {
  tusk_worker_t **pp = &M.workers;
  while (*pp && *pp != w) pp = &(*pp)->next;
  if (*pp) *pp = w->next;
  idle_remove(w);
  int replace = !M.draining && !w->retiring;
  int index = w->index;
  uint64_t lived = uv_now(M.loop) - w->started_ms;
  if (w->slot) {
    w->slot->busy_since_ms = 0;
    w->slot->conns = 0;
    w->slot->pid = 0;
    w->slot = NULL;
  }
  uv_close((uv_handle_t *)&w->timer, on_worker_handle_close);
  if (replace) {
    if (w->recycled) {
      M.quick_deaths = 0;
      spawn(index);
    } else {
      /* Failing at boot, or dying before ever being ready, is what backs
       * off; a handler exception after serving is restarted at once. */
      if (w->boot_failed || (lived < 1000 && !w->ready && !w->handler_failed)) M.quick_deaths++;
      else M.quick_deaths = 0;
      if (M.quick_deaths >= 3) {
        /* Dying at once, again and again (a script that cannot boot): back
         * off exponentially instead of forking in a loop. */
        int shift = TUSK_MIN(M.quick_deaths - 3, 5);
        uint64_t delay = 1000ull << shift;
        TUSK_ERROR("PHP workers keep failing right after they start (%d times in a row); next try in %llus",
                   M.quick_deaths, (unsigned long long)(delay / 1000));
        spawn_later(index, delay);
      } else {
        spawn(index);
      }
    }
  }
  maybe_exit();
}

static void close_pipe(tusk_worker_t *w) {
  if (w->pipe_closed) return;
  w->pipe_closed = 1;
  if (w->paused) {
    w->paused = 0;
    if (--M.npaused == 0) uv_check_stop(&M.unpause);
  }
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->pipe, on_worker_handle_close);
  uv_close((uv_handle_t *)&w->req, on_worker_handle_close); /* EOF: the worker exits */
}

static void worker_lost(tusk_worker_t *w) {
  if (w->job) {
    tusk_http_job_t *c = w->job;
    w->job = NULL;
    c->worker = NULL;
    c->ops->fail(c, w->timed_out ? 504 : 502);
  }
  idle_remove(w);
  if (w->busy) w->lost_busy = 1;
  w->busy = 0;
  close_pipe(w);
  if (w->reaped) worker_gone(w);
}

static void retire(tusk_worker_t *w) {
  w->retiring = 1;
  if (M.conf->direct) {
    kill(w->pid, SIGTERM); /* it stops accepting, finishes, exits */
    return;
  }
  idle_remove(w);
  if (!w->busy) close_pipe(w); /* EOF tells it to exit */
}

static void on_worker_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_worker_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

/* Slow clients: a response with more than --output-buffer-size unsent
 * stops the reading of its worker's pipe, so PHP blocks in its next write
 * (and --request-timeout still bounds it). The check below, run after each
 * loop iteration while any worker is paused, resumes it at half of that,
 * or when the client or the worker went away. */
static void on_unpause_check(uv_check_t *h);

static void worker_pause(tusk_worker_t *w) {
  if (w->paused || w->pipe_closed) return;
  w->paused = 1;
  uv_read_stop((uv_stream_t *)&w->pipe);
  if (M.npaused++ == 0) uv_check_start(&M.unpause, on_unpause_check);
}

static void worker_feed(tusk_worker_t *w);

static void worker_resume(tusk_worker_t *w) {
  if (!w->paused) return;
  w->paused = 0;
  if (--M.npaused == 0) uv_check_stop(&M.unpause);
  if (w->pipe_closed) return;
  uv_read_start((uv_stream_t *)&w->pipe, on_worker_alloc, on_worker_read);
  worker_feed(w); /* frames read before the pause */
}

static void on_unpause_check(uv_check_t *h) {
  for (tusk_worker_t *w = M.workers, *next; w; w = next) {
    next = w->next;
    if (!w->paused) continue;
    tusk_http_job_t *c = w->job;
    if (!c || w->reaped || w->pipe_closed || c->ops->pending(c) <= M.conf->output_buffer / 2) worker_resume(w);
  }
}

static void on_worker_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  tusk_worker_t *w = s->data;
  if (nread < 0) {
    worker_lost(w);
    return;
  }
  w->in.len += (size_t)nread;
  worker_feed(w);
}

static void worker_feed(tusk_worker_t *w) {
  size_t off = 0;
  for (;;) {
    tusk_chan_frame_t f;
    const char *payload;
    int n = tusk_chan_get(w->in.data + off, w->in.len - off, &f, &payload);
    if (n == TUSK_AGAIN) break;
    if (n < 0) {
      TUSK_ERROR("worker %d sent a malformed frame; replacing it", w->index);
      kill(w->pid, SIGKILL);
      worker_lost(w);
      return;
    }
    off += (size_t)n;
    tusk_http_job_t *c = w->job;
    switch (f.type) {
      case TUSK_CHAN_HEAD:
        if (c) c->ops->head(c, payload, f.len);
        break;
      case TUSK_CHAN_INFO:
        if (c) c->ops->info(c, payload, f.len);
        break;
      case TUSK_CHAN_BODY:
        if (c) {
          c->ops->body(c, payload, f.len, f.flags & TUSK_CHAN_F_FLUSH);
          if (w->job == c && c->ops->pending && c->ops->pending(c) > M.conf->output_buffer) worker_pause(w);
        }
        break;
      case TUSK_CHAN_END:
        /* The request timeout keeps running: a script may go on after
         * fastcgi_finish_request(), and it is bounded too (until IDLE). */
        if (c) {
          w->job = NULL;
          c->worker = NULL;
          c->ops->end(c);
        }
        break;
      case TUSK_CHAN_IDLE:
        w->ready = 1;
        uv_timer_stop(&w->timer);
        w->job = NULL;
        w->busy = 0;
        w->requests++;
        if (w->retiring || M.draining) {
          if (w->retiring) close_pipe(w);
          else idle_push(w);
        } else {
          idle_push(w);
        }
        break;
      default:
        break;
    }
    if (w->pipe_closed || w->paused) break;
  }
  if (w->pipe_closed) return;
  tusk_buf_consume(&w->in, off);
  pump_queue();
  if (M.draining && M.http.nconns == 0) {
    for (tusk_worker_t *x = M.workers; x; x = x->next) {
      if (!x->busy) close_pipe(x);
    }
  }
}

static void on_worker_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  tusk_worker_t *w = h->data;
  if (tusk_buf_reserve(&w->in, 64 * 1024) != 0) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(w->in.data + w->in.len, (unsigned)(w->in.cap - w->in.len - 1));
}

static void on_request_timeout(uv_timer_t *t) {
  tusk_worker_t *w = t->data;
  TUSK_ERROR("worker %d (pid %d): %s ran past --request-timeout %gs%s, replacing the worker", w->index,
             (int)w->pid, w->what, M.conf->request_timeout,
             w->job ? ": 504" : " (after its response was sent)");
  w->timed_out = 1;
  kill(w->pid, SIGKILL);
}

/* Direct mode: --request-timeout from the scoreboard. The worker owns its
 * connections, so killing it closes them (its clients see the connection
 * end rather than a 504). */
static void on_watchdog(uv_timer_t *t) {
  uint64_t now = tusk_monotonic_ms();
  uint64_t limit = (uint64_t)(M.conf->request_timeout * 1000);
  for (tusk_worker_t *w = M.workers; w; w = w->next) {
    if (!w->slot || w->timed_out) continue;
    uint64_t since = w->slot->busy_since_ms;
    if (since && now > since && now - since > limit) {
      w->timed_out = 1;
      TUSK_ERROR("worker %d (pid %d): %s ran past --request-timeout %gs; killing the worker (direct mode: its "
                 "connections are closed)",
                 w->index, (int)w->pid, w->slot->what, M.conf->request_timeout);
      kill(w->pid, SIGKILL);
    }
  }
}

static void on_respawn_close(uv_handle_t *h) { free(h); }

static void on_respawn(uv_timer_t *t) {
  int index = (int)(intptr_t)t->data;
  uv_close((uv_handle_t *)t, on_respawn_close);
  spawn(index);
}

static void spawn_later(int index, uint64_t delay_ms) {
  uv_timer_t *t = malloc(sizeof *t);
  if (!t) return;
  uv_timer_init(M.loop, t);
  t->data = (void *)(intptr_t)index;
  uv_timer_start(t, on_respawn, delay_ms, 0);
}

/* ---- the template (--worker-template) --------------------------------------------------- */

static void register_worker(int index, pid_t pid, int fd, int req_fd, uv_stream_t *accept_from);
static void spawn_template(void);

static void tpl_send_fork(int index) {
  tusk_tpl_msg_t m = {TUSK_TPL_FORK, index, 0};
  uv_buf_t b = uv_buf_init((char *)&m, sizeof m);
  if (uv_try_write((uv_stream_t *)M.tpl.pipe, &b, 1) != (int)sizeof m) {
    TUSK_ERROR("cannot ask the worker template to fork; restarting it");
    kill(M.tpl.pid, SIGKILL);
  }
}

static void on_tpl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  tusk_buf_reserve(&M.tpl.in, 4096);
  *buf = uv_buf_init(M.tpl.in.data + M.tpl.in.len, (unsigned)(M.tpl.in.cap - M.tpl.in.len - 1));
}

static void on_tpl_close(uv_handle_t *h) { free(h); }

static void tpl_close(void) {
  if (!M.tpl.open) return;
  M.tpl.open = 0;
  M.tpl.ready = 0;
  uv_close((uv_handle_t *)M.tpl.pipe, on_tpl_close);
  M.tpl.pipe = NULL;
}

static void on_tpl_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  if ((uv_pipe_t *)s != M.tpl.pipe) return; /* a retired template's last words */
  if (nread < 0) {
    tpl_close(); /* it died or failed to boot: SIGCHLD decides what next */
    return;
  }
  M.tpl.in.len += (size_t)nread;
  while (M.tpl.in.len >= sizeof(tusk_tpl_msg_t)) {
    tusk_tpl_msg_t m;
    memcpy(&m, M.tpl.in.data, sizeof m);
    tusk_buf_consume(&M.tpl.in, sizeof m);
    if (m.type == TUSK_TPL_READY) {
      M.tpl.ready = 1;
      TUSK_INFO("worker template (pid %d) booted in %llums; forking %d worker(s)", (int)M.tpl.pid,
                (unsigned long long)(uv_now(M.loop) - M.tpl.started_ms), M.tpl.npending);
      for (int i = 0; i < M.tpl.npending; i++) tpl_send_fork(M.tpl.pending[i]);
      M.tpl.npending = 0;
    } else if (m.type == TUSK_TPL_FORKED) {
      /* Two descriptors: the worker's response and request sockets. */
      if (uv_pipe_pending_count(M.tpl.pipe) >= 2) register_worker(m.index, m.pid, -1, -1, (uv_stream_t *)M.tpl.pipe);
    }
  }
}

static void spawn_template(void) {
  if (M.draining) return;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    TUSK_ERROR("cannot create the template channel: %s", strerror(errno));
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    TUSK_ERROR("cannot fork the worker template: %s", strerror(errno));
    close(sv[0]);
    close(sv[1]);
    return;
  }
  if (pid == 0) {
    close_inherited_fds(sv[1], -1);
    tusk_worker_main(M.conf, sv[1], sv[1], -1);
  }
  close(sv[1]);
  M.tpl.pid = pid;
  M.tpl.ready = 0;
  M.tpl.generation = M.generation;
  M.tpl.started_ms = uv_now(M.loop);
  tusk_buf_reset(&M.tpl.in);
  M.tpl.pipe = malloc(sizeof *M.tpl.pipe);
  if (!M.tpl.pipe) return;
  uv_pipe_init(M.loop, M.tpl.pipe, 1);
  uv_pipe_open(M.tpl.pipe, sv[0]);
  M.tpl.open = 1;
  uv_read_start((uv_stream_t *)M.tpl.pipe, on_tpl_alloc, on_tpl_read);
}

static void spawn(int index) {
  if (M.draining) return;
  if (M.conf->worker_template && !M.conf->direct) {
    /* Forked by the template once it has booted. */
    if (M.tpl.open && M.tpl.ready) {
      tpl_send_fork(index);
    } else {
      int *p = realloc(M.tpl.pending, (size_t)(M.tpl.npending + 1) * sizeof *p);
      if (!p) return;
      M.tpl.pending = p;
      M.tpl.pending[M.tpl.npending++] = index;
      if (!M.tpl.open && M.tpl.pid == 0) spawn_template();
    }
    return;
  }
  if (M.conf->direct) {
    tusk_slot_t *slot = NULL;
    for (int i = 0; i < M.nslots && !slot; i++) {
      if (M.board[i].pid == 0) slot = &M.board[i];
    }
    if (!slot) {
      TUSK_ERROR("no free scoreboard slot for a new worker");
      return;
    }
    slot->busy_since_ms = 0;
    slot->conns = 0;
    slot->pid = -1;
    pid_t pid = fork();
    if (pid < 0) {
      TUSK_ERROR("cannot fork a PHP worker: %s", strerror(errno));
      slot->pid = 0;
      return;
    }
    if (pid == 0) {
      int lfd = M.listen_fds[index % M.conf->workers];
      int tfd = M.tls_listen_fds ? M.tls_listen_fds[index % M.conf->workers] : -1;
      close_inherited_fds(lfd, tfd);
      tusk_worker_direct_main(M.conf, lfd, tfd, M.tls, index, slot);
    }
    slot->pid = pid;
    tusk_worker_t *w = calloc(1, sizeof *w);
    w->index = index;
    w->pid = pid;
    w->generation = M.generation;
    w->started_ms = uv_now(M.loop);
    w->pipe_closed = 1; /* no channel: the worker owns its connections */
    w->slot = slot;
    tusk_buf_init(&w->in);
    uv_timer_init(M.loop, &w->timer);
    w->timer.data = w;
    w->handles_open = 1;
    w->next = M.workers;
    M.workers = w;
    return;
  }
  int sv[2], rq[2]; /* sv: worker -> master, rq: master -> worker */
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    TUSK_ERROR("cannot create a worker channel: %s", strerror(errno));
    return;
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rq) != 0) {
    TUSK_ERROR("cannot create a worker channel: %s", strerror(errno));
    close(sv[0]);
    close(sv[1]);
    return;
  }
  int sz = 1024 * 1024;
  setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt(rq[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  pid_t pid = fork();
  if (pid < 0) {
    TUSK_ERROR("cannot fork a PHP worker: %s", strerror(errno));
    close(sv[0]);
    close(sv[1]);
    close(rq[0]);
    close(rq[1]);
    return;
  }
  if (pid == 0) {
    close_inherited_fds(rq[1], sv[1]);
    tusk_worker_main(M.conf, rq[1], sv[1], index);
  }
  close(sv[1]);
  close(rq[1]);
  register_worker(index, pid, sv[0], rq[0], NULL);
}

/* A pooled worker exists: pid, and its channel as two fds (responses in,
 * requests out) or to be accepted, in that order, from the template's pipe. */
static void register_worker(int index, pid_t pid, int fd, int req_fd, uv_stream_t *accept_from) {
  tusk_worker_t *w = calloc(1, sizeof *w);
  w->index = index;
  w->pid = pid;
  w->generation = M.generation;
  w->started_ms = uv_now(M.loop);
  tusk_buf_init(&w->in);
  uv_pipe_init(M.loop, &w->pipe, 0);
  uv_pipe_init(M.loop, &w->req, 0);
  if (accept_from) {
    uv_accept(accept_from, (uv_stream_t *)&w->pipe);
    uv_accept(accept_from, (uv_stream_t *)&w->req);
  } else {
    uv_pipe_open(&w->pipe, fd);
    uv_pipe_open(&w->req, req_fd);
  }
  w->pipe.data = w;
  w->req.data = w;
  /* Reaped before we heard of it? */
  for (int i = 0; i < M.norphans; i++) {
    if (M.orphans[i] == pid) {
      w->reaped = 1;
      M.orphans[i] = M.orphans[--M.norphans];
      break;
    }
  }
  uv_timer_init(M.loop, &w->timer);
  w->timer.data = w;
  w->handles_open = 3;
  w->next = M.workers;
  M.workers = w;
  uv_read_start((uv_stream_t *)&w->pipe, on_worker_alloc, on_worker_read);
  TUSK_DEBUG("worker %d started (pid %d)", index, (int)pid);
  /* It takes requests once it says IDLE (a worker script boots first). */
}

/* ---- the queue --------------------------------------------------------------------------- */

static void start_on(tusk_worker_t *w, tusk_http_job_t *c) {
  idle_remove(w);
  w->busy = 1;
  w->job = c;
  w->timed_out = 0;
  c->worker = w;
  size_t wl = strnlen(c->what, sizeof c->what);
  if (wl >= sizeof w->what) wl = sizeof w->what - 1;
  memcpy(w->what, c->what, wl);
  w->what[wl] = '\0';
  if (M.conf->request_timeout > 0) uv_timer_start(&w->timer, on_request_timeout, (uint64_t)(M.conf->request_timeout * 1000), 0);
  worker_send(w, &c->frame);
}

static tusk_worker_t *take_idle(void) {
  while (M.nidle > 0) {
    tusk_worker_t *w = M.idle[M.nidle - 1];
    if (!w->retiring && !w->pipe_closed && !w->busy) return w;
    idle_remove(w);
  }
  return NULL;
}

static void pump_queue(void) {
  while (M.qhead) {
    tusk_worker_t *w = take_idle();
    if (!w) return;
    tusk_http_job_t *c = M.qhead;
    M.qhead = c->qnext;
    if (M.qhead) M.qhead->qprev = NULL;
    else M.qtail = NULL;
    c->qnext = c->qprev = NULL;
    c->queued = 0;
    M.qlen--;
    start_on(w, c);
  }
}

static int pool_submit(tusk_http_job_t *c) {
  tusk_worker_t *w = M.qhead ? NULL : take_idle();
  if (w) {
    start_on(w, c);
    return 0;
  }
  if (M.qlen >= M.conf->queue_size) return TUSK_ELIMIT;
  c->queued = 1;
  c->qnext = NULL;
  c->qprev = M.qtail;
  if (M.qtail) M.qtail->qnext = c;
  else M.qhead = c;
  M.qtail = c;
  M.qlen++;
  return 0;
}

static void pool_cancel(tusk_http_job_t *c) {
  if (c->queued) {
    if (c->qprev) c->qprev->qnext = c->qnext;
    else M.qhead = c->qnext;
    if (c->qnext) c->qnext->qprev = c->qprev;
    else M.qtail = c->qprev;
    c->qnext = c->qprev = NULL;
    c->queued = 0;
    M.qlen--;
  }
  if (c->worker) {
    tusk_worker_t *w = c->worker;
    w->job = NULL;
    c->worker = NULL;
    tusk_buf_t b;
    tusk_buf_init(&b);
    tusk_chan_put(&b, TUSK_CHAN_ABORT, 0, c->seq, NULL, 0);
    worker_send(w, &b);
    tusk_buf_dispose(&b);
  }
}

/* ---- signals -------------------------------------------------------------------------------- */

static void on_tpl_retry(uv_timer_t *t) { spawn_template(); }

static void on_sigchld(uv_signal_t *s, int signum) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (M.tpl.pid && pid == M.tpl.pid) {
      M.tpl.pid = 0;
      tpl_close();
      if (M.draining || M.tpl.generation != M.generation) continue; /* retired */
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      if (code == TUSK_PHP_WORKER_BOOT_FAILED || uv_now(M.loop) - M.tpl.started_ms < 1000) M.tpl.quick_deaths++;
      else M.tpl.quick_deaths = 0;
      if (WIFSIGNALED(status)) {
        TUSK_ERROR("worker template (pid %d) was killed by signal %d (%s); starting it again", (int)pid,
                   WTERMSIG(status), strsignal(WTERMSIG(status)));
      } else {
        TUSK_ERROR("worker template (pid %d) exited with status %d%s", (int)pid, code,
                   code == TUSK_PHP_WORKER_BOOT_FAILED ? ": the worker script failed to boot (see the PHP error above)"
                                                       : "");
      }
      /* Workers still wanted are forked by the next template. */
      uint64_t delay = M.tpl.quick_deaths >= 3 ? 1000ull << TUSK_MIN(M.tpl.quick_deaths - 3, 5) : 0;
      if (delay) {
        TUSK_ERROR("the worker template keeps failing; next try in %llus", (unsigned long long)(delay / 1000));
        uv_timer_start(&M.tpl_retry, on_tpl_retry, delay, 0);
      } else {
        spawn_template();
      }
      continue;
    }
    tusk_worker_t *w = M.workers;
    while (w && w->pid != pid) w = w->next;
    if (!w) {
      if (M.conf->worker_template) {
        if (M.norphans == (int)TUSK_ARRAY_SIZE(M.orphans)) { /* forget the oldest */
          memmove(M.orphans, M.orphans + 1, sizeof M.orphans - sizeof M.orphans[0]);
          M.norphans--;
        }
        M.orphans[M.norphans++] = pid;
      }
      continue;
    }
    w->reaped = 1;
    if (w->slot && w->slot->busy_since_ms) {
      w->lost_busy = 1;
      snprintf(w->what, sizeof w->what, "%s", w->slot->what);
    }
    if (WIFSIGNALED(status)) {
      int sig = WTERMSIG(status);
      if (w->timed_out) {
        /* already logged */
      } else if (w->busy || w->lost_busy) {
        TUSK_ERROR("worker %d (pid %d) was killed by signal %d (%s) while running %s; the client gets 502%s",
                   w->index, (int)pid, sig, strsignal(sig), w->what,
                   M.conf->direct ? " (direct mode: its connections are closed)"
                   : M.draining || w->retiring ? "" : ", starting a new worker");
      } else {
        TUSK_ERROR("worker %d (pid %d) was killed by signal %d (%s) while idle%s", w->index, (int)pid, sig,
                   strsignal(sig), M.draining || w->retiring ? "" : "; starting a new worker");
      }
    } else if (WIFEXITED(status)) {
      int code = WEXITSTATUS(status);
      int busy = w->busy || w->lost_busy;
      if (code == TUSK_PHP_WORKER_RECYCLE) {
        w->recycled = 1;
        TUSK_INFO("worker %d (pid %d) recycled; starting a new one", w->index, (int)pid);
      } else if (code == TUSK_PHP_WORKER_BOOT_FAILED) {
        w->boot_failed = 1;
        TUSK_ERROR("worker script %s failed to boot: it ended before calling frankenphp_handle_request() (see the "
                   "PHP error above)",
                   M.conf->worker_script);
      } else if (code == TUSK_PHP_WORKER_FAILED) {
        w->handler_failed = 1;
        TUSK_ERROR("worker %d (pid %d): the worker script stopped after an uncaught exception; restarting it",
                   w->index, (int)pid);
      } else if (code != 0 || (!w->retiring && !M.draining)) {
        TUSK_ERROR("worker %d (pid %d) exited with status %d%s%s", w->index, (int)pid, code,
                   busy ? " while running " : "", busy ? w->what : "");
      }
    }
    if (w->pipe_closed) worker_gone(w);
  }
}

static void stop_listening(void) {
  if (M.listening) {
    uv_close((uv_handle_t *)&M.listener, NULL);
    if (M.tls) uv_close((uv_handle_t *)&M.tls_listener, NULL);
    M.listening = 0;
  }
}

static void on_drained(tusk_http_ctx_t *ctx) {
  for (tusk_worker_t *w = M.workers; w; w = w->next) {
    if (!w->busy) close_pipe(w);
  }
  maybe_exit();
}

static void on_drain_timeout(uv_timer_t *t) {
  TUSK_WARN("drain timeout (--drain-timeout %.0fs): closing %zu connection(s) still open", M.conf->drain_timeout,
            M.http.nconns);
  for (tusk_worker_t *w = M.workers; w; w = w->next) kill(w->pid, SIGKILL);
  M.exit_code = 0;
  uv_stop(M.loop);
}

static void on_stop_signal(uv_signal_t *s, int signum) {
  if (M.draining) {
    if (signum == SIGINT) {
      TUSK_WARN("second interrupt: stopping now");
      for (tusk_worker_t *w = M.workers; w; w = w->next) kill(w->pid, SIGKILL);
      uv_stop(M.loop);
    }
    return;
  }
  TUSK_INFO("%s: draining (no new connections; finishing %zu open one(s))", strsignal(signum), M.http.nconns);
  M.draining = 1;
  uv_timer_start(&M.drain_timer, on_drain_timeout, (uint64_t)(M.conf->drain_timeout * 1000), 0);
  tpl_close();
  if (M.conf->direct) {
    /* Each worker drains its own connections. */
    for (tusk_worker_t *w = M.workers; w; w = w->next) kill(w->pid, SIGTERM);
    maybe_exit(); /* nothing to wait for when no worker is up */
    return;
  }
  stop_listening();
  tusk_http_drain(&M.http);
}

static void reload(const char *why) {
  if (M.draining) return;
  M.generation++;
  int old = 0;
  for (tusk_worker_t *w = M.workers; w; w = w->next) {
    if (!w->retiring) {
      old++;
      w->retiring = 1;
    }
  }
  TUSK_INFO("%s: reloading: starting %d new PHP workers; %d old ones finish their requests first", why,
            M.conf->workers, old);
  /* Retire first (so new requests go only to new workers), then spawn. */
  tusk_worker_t *list[4096];
  int n = 0;
  for (tusk_worker_t *w = M.workers; w && n < 4096; w = w->next) {
    if (w->retiring) list[n++] = w;
  }
  if (M.tls) {
    /* Certificates are re-read too (renewed by certbot & co.): new
     * connections get them, open ones keep theirs. */
    char err[512];
    if (tusk_tls_ctx_reload(M.tls, err, sizeof err) != 0) TUSK_WARN("TLS certificates kept: %s", err);
    else TUSK_INFO("TLS certificates reloaded");
    if (M.conf->tls_ocsp && tusk_tls_ctx_refresh_ocsp(M.tls, err, sizeof err) < 0) {
      TUSK_DEBUG("OCSP: %s", err);
    }
  }
  /* Deployed code must be what the new workers run: OPcache is reset (and
   * so disabled until every process has left it) before they fork. */
  tusk_php_opcache_reset();
  if (M.conf->worker_template && !M.conf->direct) {
    /* The old template goes (its workers are ours and retire as usual); a
     * new one boots the new code. */
    tpl_close();
    M.tpl.pid = 0;
    M.tpl.npending = 0;
  }
  for (int i = 0; i < M.conf->workers; i++) spawn(i);
  for (int i = 0; i < n; i++) retire(list[i]);
}

static void on_reload_signal(uv_signal_t *s, int signum) { reload(strsignal(signum)); }

/* ---- --watch ------------------------------------------------------------------------------------ */

static void on_watch_debounced(uv_timer_t *t) { reload("files changed under --watch"); }

static void on_watch_event(uv_fs_event_t *h, const char *name, int events, int status) {
  if (status < 0 || M.draining) return;
  /* Editors and deploys write several files: one reload after a quiet 300 ms. */
  uv_timer_start(&M.watch_debounce, on_watch_debounced, 300, 0);
}

static int add_watch(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  if (type != FTW_D) return 0;
  const char *base = path + ftw->base;
  if (base[0] == '.' && ftw->level > 0) return 0; /* .git and friends */
  if (M.nwatchers >= 4096) return 1;
  uv_fs_event_t *w = &M.watchers[M.nwatchers];
  uv_fs_event_init(M.loop, w);
  if (uv_fs_event_start(w, on_watch_event, path, 0) == 0) {
    uv_unref((uv_handle_t *)w);
    M.nwatchers++;
  } else {
    uv_close((uv_handle_t *)w, NULL);
  }
  return 0;
}

/* Watches every folder under each --watch folder (inotify is not
 * recursive; folders created later are not watched until the reload). */
static void start_watching(void) {
  if (!M.conf->watch) return;
  M.watchers = calloc(4096, sizeof *M.watchers);
  if (!M.watchers) return;
  uv_timer_init(M.loop, &M.watch_debounce);
  uv_unref((uv_handle_t *)&M.watch_debounce);
  char *copy = strdup(M.conf->watch), *save = NULL;
  for (char *d = strtok_r(copy, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
    while (*d == ' ') d++;
    if (*d) nftw(d, add_watch, 32, FTW_PHYS);
  }
  free(copy);
  if (M.nwatchers >= 4096) TUSK_WARN("--watch: watching the first 4096 folders only");
  TUSK_INFO("watching %d folder(s) for changes (--watch %s)", M.nwatchers, M.conf->watch);
}

/* ---- main ----------------------------------------------------------------------------------- */

/* Loads the certificates (before any fork: every process shares the
 * session-ticket secret) and staples OCSP responses where it can. */
static int start_tls(const tusk_conf_t *conf, char *err, size_t errlen) {
  enum { MAX_CERTS = 64 };
  const char *certs[MAX_CERTS + 1], *keys[MAX_CERTS + 1];
  char *cl = strdup(conf->tls_cert), *kl = strdup(conf->tls_key);
  size_t nc = 0, nk = 0;
  for (char *save = NULL, *t = strtok_r(cl, ",", &save); t && nc <= MAX_CERTS; t = strtok_r(NULL, ",", &save)) {
    certs[nc++] = t;
  }
  for (char *save = NULL, *t = strtok_r(kl, ",", &save); t && nk <= MAX_CERTS; t = strtok_r(NULL, ",", &save)) {
    keys[nk++] = t;
  }
  int rc = 0;
  if (nc > MAX_CERTS || nk > MAX_CERTS) {
    snprintf(err, errlen, "--tls-cert takes at most %d certificates", MAX_CERTS);
    rc = -1;
  } else if (nc == 0 || nc != nk) {
    snprintf(err, errlen, "--tls-cert lists %zu files and --tls-key %zu: give one key per certificate", nc, nk);
    rc = -1;
  } else {
    tusk_tls_conf_t tc = {certs, keys, nc, conf->h2 ? "h2,http/1.1" : "http/1.1", conf->tls_ocsp};
    M.tls = tusk_tls_ctx_create(&tc, err, errlen);
    if (!M.tls) rc = -1;
  }
  if (M.tls && conf->tls_ocsp) {
    char oerr[512];
    int n = tusk_tls_ctx_refresh_ocsp(M.tls, oerr, sizeof oerr);
    if (n > 0) TUSK_INFO("OCSP: stapling responses for %d certificate(s)", n);
    else if (n < 0) TUSK_WARN("OCSP: %s (serving without stapling)", oerr);
  }
  free(cl);
  free(kl);
  return rc;
}

int tusk_master_run(tusk_conf_t *conf, const char *argv0) {
  memset(&M, 0, sizeof M);
  M.conf = conf;
  signal(SIGPIPE, SIG_IGN);
  if (tusk_php_startup(conf, argv0) != 0) return 1;
  /* libuv's global signal lock (a pipe, created with the first loop) must
   * be open in every process: its fork handler closes those fd numbers in
   * each child, which would otherwise be reused by then (the template's
   * channels). So create it now and keep it in the fd snapshot. */
  uv_loop_t probe;
  if (uv_loop_init(&probe) == 0) uv_loop_close(&probe);
  snapshot_fds();

  M.loop = uv_default_loop();
  tusk_http_ctx_t *h = &M.http;
  char err[512];
  int port = 0, tls_port = 0;
  if (conf->tls_cert && start_tls(conf, err, sizeof err) != 0) {
    fprintf(stderr, "tusk: %s\n", err);
    return 1;
  }
  /* Staples age (responders sign for days): refresh them in the
   * background; direct workers refresh their own copy. */
  if (M.tls && conf->tls_ocsp) tusk_server_ocsp_refresher_start(M.loop, M.tls, conf->tls_ocsp_refresh);
  if (conf->direct) {
    /* The master only binds; workers accept and serve. */
    M.nslots = conf->workers * 2 + 8;
    M.board = tusk_scoreboard_create(M.nslots);
    if (!M.board) {
      fprintf(stderr, "tusk: cannot map the worker scoreboard\n");
      return 1;
    }
    uv_timer_init(M.loop, &M.watchdog);
    if (conf->request_timeout > 0) uv_timer_start(&M.watchdog, on_watchdog, 250, 250);
    uv_unref((uv_handle_t *)&M.watchdog);
    h->loop = M.loop;
    h->conf = conf;
    h->docroot.fd = -1;
    /* One SO_REUSEPORT socket per worker index: the kernel spreads new
     * connections evenly, instead of the quickest worker taking them all.
     * The master keeps them, so a replaced worker gets its socket (and the
     * connections waiting on it) back. */
    M.listen_fds = calloc((size_t)conf->workers, sizeof *M.listen_fds);
    for (int i = 0; i < conf->workers; i++) {
      if (tusk_server_bind(conf->listen_host, i == 0 ? conf->listen_port : port, 1, &M.listen_fds[i], &port, err,
                           sizeof err) != 0) {
        fprintf(stderr, "tusk: %s\n", err);
        return 1;
      }
    }
    if (M.tls) {
      M.tls_listen_fds = calloc((size_t)conf->workers, sizeof *M.tls_listen_fds);
      for (int i = 0; i < conf->workers; i++) {
        if (tusk_server_bind(conf->tls_listen_host, i == 0 ? conf->tls_listen_port : tls_port, 1,
                             &M.tls_listen_fds[i], &tls_port, err, sizeof err) != 0) {
          fprintf(stderr, "tusk: %s\n", err);
          return 1;
        }
      }
      /* Workers are forked with this conf and build their own context:
       * --tls-redirect needs the port really bound, not :0. */
      conf->tls_listen_port = tls_port;
    }
  } else {
    if (tusk_http_ctx_init(h, M.loop, conf, err, sizeof err) != 0) {
      fprintf(stderr, "tusk: %s\n", err);
      return 1;
    }
    h->on_drained = on_drained;
    h->php_submit = pool_submit;
    h->php_cancel = pool_cancel;
    if (tusk_server_bind(conf->listen_host, conf->listen_port, 0, &M.listen_fd, &port, err, sizeof err) != 0 ||
        tusk_server_listen_fd(h, &M.listener, M.listen_fd, err, sizeof err) != 0) {
      fprintf(stderr, "tusk: %s\n", err);
      return 1;
    }
    if (M.tls) {
      h->tls = M.tls;
      h->tls_listener = &M.tls_listener;
      if (tusk_server_bind(conf->tls_listen_host, conf->tls_listen_port, 0, &M.tls_listen_fd, &tls_port, err,
                           sizeof err) != 0 ||
          tusk_server_listen_fd(h, &M.tls_listener, M.tls_listen_fd, err, sizeof err) != 0) {
        fprintf(stderr, "tusk: %s\n", err);
        return 1;
      }
      h->tls_port = tls_port;
    }
    M.listening = 1;
  }
  uv_check_init(M.loop, &M.unpause);
  uv_unref((uv_handle_t *)&M.unpause);
  uv_timer_init(M.loop, &M.drain_timer);
  uv_unref((uv_handle_t *)&M.drain_timer);

  static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR2, SIGCHLD};
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(sigs); i++) {
    uv_signal_init(M.loop, &M.sig[i]);
    uv_signal_start(&M.sig[i],
                    sigs[i] == SIGCHLD                       ? on_sigchld
                    : (sigs[i] == SIGHUP || sigs[i] == SIGUSR2) ? on_reload_signal
                                                             : on_stop_signal,
                    sigs[i]);
    /* SIGCHLD's watcher keeps the loop alive until the last worker is
     * reaped (maybe_exit() stops the loop). */
    if (sigs[i] != SIGCHLD) uv_unref((uv_handle_t *)&M.sig[i]);
  }

  uv_timer_init(M.loop, &M.tpl_retry);
  uv_unref((uv_handle_t *)&M.tpl_retry);
  tusk_buf_init(&M.tpl.in);
  if (conf->worker_template && !conf->direct) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  for (int i = 0; i < conf->workers; i++) spawn(i);
  start_watching();
  const char *fc = conf->front_controller;
  TUSK_INFO("serving %s on http://%s%s%s:%d with %d PHP workers (%s mode)%s%s%s%s", conf->docroot,
            strchr(conf->listen_host, ':') ? "[" : "", conf->listen_host, strchr(conf->listen_host, ':') ? "]" : "",
            port, conf->workers, conf->direct ? "direct" : "pooled", fc ? ", front controller /" : "", fc ? fc : "",
            conf->worker_script ? ", worker script " : "", conf->worker_script ? conf->worker_script : "");
  if (M.tls) {
    TUSK_INFO("HTTPS on https://%s%s%s:%d (%s)", strchr(conf->tls_listen_host, ':') ? "[" : "", conf->tls_listen_host,
              strchr(conf->tls_listen_host, ':') ? "]" : "", tls_port, conf->h2 ? "h2, http/1.1" : "http/1.1");
  }
  uv_run(M.loop, UV_RUN_DEFAULT);
  tusk_http_ctx_dispose(h);
  tusk_tls_ctx_destroy(M.tls);
  if (M.tls_listen_fds) {
    for (int i = 0; i < M.conf->workers; i++) close(M.tls_listen_fds[i]);
    free(M.tls_listen_fds);
  }
  if (M.conf->direct) {
    for (int i = 0; i < M.conf->workers; i++) close(M.listen_fds[i]);
    free(M.listen_fds);
    tusk_scoreboard_destroy(M.board, M.nslots);
  }
  free(M.idle);
  free(M.keep_fds);
  free(M.tpl.pending);
  tusk_buf_dispose(&M.tpl.in);
  free(M.watchers); /* the loop is gone: the handles need no closing */
  /* PHP's module shutdown restores the signal dispositions it saw at
   * startup and re-raises what it deferred; we are done with signals. */
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR2, SIG_IGN);
  tusk_php_shutdown();
  return M.exit_code;
}
