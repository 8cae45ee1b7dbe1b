/* `tusk run app.php`: event-driven PHP services (Workerman-style).
 *
 * The master starts PHP once, forks a probe that runs the script up to
 * Tusk\Worker::runAll() and reports the declared services, binds their
 * listeners, and forks --workers PHP processes that each run the script and
 * then an event loop (src/php/runtime/app.php). The master holds every
 * client connection: it accepts, frames messages (text, frame, raw) and
 * hands each event to the PHP worker the connection is assigned to; the
 * worker's commands (send, close, groups, uids, broadcast) come back on
 * the same channel. So a worker that dies or is replaced loses no
 * connection: its connections move to another worker.
 *
 * Direct mode (--mode direct) is the other shape: every worker process runs
 * this same connection code on a loop of its own (local_start()), on the
 * listening sockets the master bound, and owns the connections it accepts,
 * as Workerman's processes do; its events go to its PHP without a hop
 * (php/app.h: tusk_app_local_t). Sends to groups, uids and broadcasts are
 * done locally and relayed through the master to the other workers. A
 * worker that dies or is replaced closes its connections.
 *
 * Signals: SIGTERM/SIGINT stop (workers run onWorkerStop, connections are
 * closed), SIGHUP/SIGUSR2 reload (new workers, then the old ones stop;
 * connections stay open), SIGUSR1 writes the status file. */
#include "proc/app_master.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"
#include "http/h1_parser.h"
#include "http/response.h"
#include "http/ws.h"
#include "net/framing.h"
#include "net/server.h"
#include "php/app.h"
#include "php/sapi.h"
#include "proc/channel.h"

#define MAX_SERVICES 64
#define SEND_BOUND (1u << 20) /* a connection's unsent bytes before onBufferFull */
#define SEND_HARD (16u << 20) /* ... and before it is closed */
/* Events queued for one worker (not yet in its pipe): above HIGH, each
 * connection that adds one stops being read until the backlog is under
 * LOW (a client flooding a slow worker meets TCP backpressure instead of
 * growing the master); UDP datagrams are dropped. */
#define BACKLOG_HIGH (8u << 20)
#define BACKLOG_LOW (2u << 20)

typedef struct app_worker_s app_worker_t;
typedef struct app_conn_s app_conn_t;

typedef struct service_s {
  char listen[4096];
  char name[256];
  tusk_framing_t framing;
  int websocket;      /* websocket://: HTTP/1.1 upgrade, then RFC 6455 messages */
  int http;           /* http://: each HTTP/1.1 request is a message (http_input()) */
  char origins[2048]; /* websocket://: allowed Origin values (tusk_ws_origin_allowed), "" for any */
  uv_timer_t heartbeat; /* websocket: pings idle connections, closes dead ones */
  int php_protocol;
  size_t max_msg;
  int is_unix;
  int is_udp; /* udp://: each datagram is a message, replies go to its sender */
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_udp_t udp;
  } l;
  int listening;
  int fd; /* the listening socket (direct mode: each worker watches it) */
  int index;
  app_conn_t *conns; /* all of its connections */
  size_t nconns;
} service_t;

/* Direct mode: what a worker holds, for the master's status. */
typedef struct shm_slot_s {
  uint32_t conns[MAX_SERVICES];
  uint64_t events;
} shm_slot_t;

typedef struct group_s {
  char *name;
  app_conn_t **v;
  size_t n, cap;
  struct group_s *next;
} group_t;

struct app_conn_s {
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_stream_t s;
  } h;
  uint64_t id;
  service_t *svc;
  app_worker_t *w;
  tusk_buf_t in;
  char remote[80];
  int closing, paused, full;
  tusk_ws_t *ws;     /* websocket, after the handshake */
  int ws_open;       /* handshake done */
  int opened;        /* the worker was told (OPEN): it is told of the close too */
  int lingering;     /* websocket done: write side shut, input drained until EOF */
  int ws_pinged;     /* a ping is unanswered */
  int http_last;     /* http://: the request without keep-alive came: ignore what follows */
  int http_continued; /* http://: 100 Continue sent for the request being read */
  uint64_t http_started_ms; /* http://: when the request being read began (0: none) */
  uint64_t active_ms; /* last input */
  size_t queued; /* bytes in libuv's write queue */
  group_t **groups;
  size_t ngroups;
  app_conn_t *prev, *next; /* in svc->conns */
  int bl_paused;               /* not read while its worker's backlog is high */
  app_conn_t *bl_prev, *bl_next; /* in that worker's bl_paused list */
  app_worker_t *bl_w;
  app_conn_t *hnext;       /* hash chain */
};

struct app_worker_s {
  int index;
  int generation;
  pid_t pid;
  uv_pipe_t pipe;
  int pipe_open, ready, stopping, reaped;
  int pipe_gone; /* its close callback ran: freed once reaped too */
  int local;     /* direct mode: this process itself (events stay in out) */
  int slot;      /* direct mode: its counters in A.shm */
  tusk_buf_t in, out;
  size_t nconns;
  uint64_t events;
  app_conn_t *bl_paused; /* connections paused for its backlog */
  app_worker_t *next;
};

static struct {
  tusk_conf_t *conf;
  uv_loop_t *loop;
  service_t svc[MAX_SERVICES];
  int nsvc;
  app_worker_t *workers;
  int generation;
  uint64_t next_id;
  app_conn_t **table; /* id -> conn */
  size_t tcap, count;
  group_t *groups;
  uv_check_t flusher;
  uv_signal_t sig[5];
  uv_timer_t stop_timer;
  int stopping;
  unsigned rr;
  const char *runtime;
  char status_path[PATH_MAX];
  char pid_path[PATH_MAX];
  char sock_path[PATH_MAX]; /* the control socket: pushes from other processes */
  uv_pipe_t control;
  int control_open;
  int direct;           /* --mode direct: workers own their connections */
  app_worker_t *local;  /* in a direct-mode worker: itself */
  int master_fd;        /* ... its channel to the master */
  uv_pipe_t master_pipe;
  tusk_buf_t master_in;
  uv_timer_t local_timer;
  int local_expired;
  shm_slot_t *shm; /* direct mode: nslots counters shared with the workers */
  int nslots;
  shm_slot_t *mine; /* in a direct-mode worker: its slot */
} A;

/* ---- connection table ------------------------------------------------------------ */

static size_t slot_of(uint64_t id) { return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & (A.tcap - 1); }

static int table_add(app_conn_t *c) {
  if (A.count * 2 >= A.tcap) {
    size_t ncap = A.tcap ? A.tcap * 2 : 1024;
    app_conn_t **nt = calloc(ncap, sizeof *nt);
    if (!nt) return -1;
    app_conn_t **old = A.table;
    size_t ocap = A.tcap;
    A.table = nt;
    A.tcap = ncap;
    for (size_t i = 0; i < ocap; i++) {
      for (app_conn_t *x = old[i], *nx; x; x = nx) {
        nx = x->hnext;
        size_t s = slot_of(x->id);
        x->hnext = A.table[s];
        A.table[s] = x;
      }
    }
    free(old);
  }
  size_t s = slot_of(c->id);
  c->hnext = A.table[s];
  A.table[s] = c;
  A.count++;
  return 0;
}

static app_conn_t *table_find(uint64_t id) {
  if (!A.tcap) return NULL;
  for (app_conn_t *x = A.table[slot_of(id)]; x; x = x->hnext) {
    if (x->id == id) return x;
  }
  return NULL;
}

static void table_del(app_conn_t *c) {
  app_conn_t **p = &A.table[slot_of(c->id)];
  while (*p && *p != c) p = &(*p)->hnext;
  if (*p) {
    *p = c->hnext;
    A.count--;
  }
}

/* ---- groups (and uids: groups named "\x01" uid) ------------------------------------- */

static group_t *group_get(const char *name, size_t len, int create) {
  for (group_t *g = A.groups; g; g = g->next) {
    if (strlen(g->name) == len && !memcmp(g->name, name, len)) return g;
  }
  if (!create) return NULL;
  group_t *g = calloc(1, sizeof *g);
  if (!g || !(g->name = strndup(name, len))) {
    free(g);
    return NULL;
  }
  g->next = A.groups;
  A.groups = g;
  return g;
}

static void group_drop_if_empty(group_t *g) {
  if (g->n) return;
  group_t **p = &A.groups;
  while (*p && *p != g) p = &(*p)->next;
  if (*p) *p = g->next;
  free(g->v);
  free(g->name);
  free(g);
}

static void group_join(app_conn_t *c, const char *name, size_t len) {
  group_t *g = group_get(name, len, 1);
  if (!g) return;
  for (size_t i = 0; i < c->ngroups; i++) {
    if (c->groups[i] == g) return;
  }
  if (g->n == g->cap) {
    size_t nc = g->cap ? g->cap * 2 : 8;
    app_conn_t **nv = realloc(g->v, nc * sizeof *nv);
    if (!nv) return;
    g->v = nv;
    g->cap = nc;
  }
  group_t **ng = realloc(c->groups, (c->ngroups + 1) * sizeof *ng);
  if (!ng) return;
  c->groups = ng;
  c->groups[c->ngroups++] = g;
  g->v[g->n++] = c;
}

static void group_leave(app_conn_t *c, group_t *g) {
  for (size_t i = 0; i < g->n; i++) {
    if (g->v[i] == c) {
      g->v[i] = g->v[--g->n];
      break;
    }
  }
  for (size_t i = 0; i < c->ngroups; i++) {
    if (c->groups[i] == g) {
      c->groups[i] = c->groups[--c->ngroups];
      break;
    }
  }
  group_drop_if_empty(g);
}

/* ---- talking to workers ---------------------------------------------------------- */

static void on_flush(uv_check_t *h);

static void worker_put(app_worker_t *w, uint8_t type, uint8_t flags, uint16_t svc, uint64_t id, const char *data,
                       size_t len) {
  if (!w || !w->pipe_open) return;
  tusk_chan_frame_t f = {(uint32_t)(8 + len), type, flags, svc};
  tusk_buf_append(&w->out, &f, sizeof f);
  tusk_buf_append(&w->out, &id, 8);
  if (len) tusk_buf_append(&w->out, data, len);
  w->events++;
  if (w->local) {
    if (A.mine) A.mine->events = w->events;
    return; /* app_wait() takes them */
  }
  uv_check_start(&A.flusher, on_flush); /* one write per worker per loop iteration */
}

typedef struct wreq_s {
  uv_write_t w;
  tusk_buf_t buf;
  app_conn_t *c;
  app_worker_t *wk;
} wreq_t;

static size_t worker_backlog(app_worker_t *w) {
  if (w->local || !w->pipe_open) return 0;
  return w->out.len + uv_stream_get_write_queue_size((uv_stream_t *)&w->pipe);
}

static void on_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void bl_unlink(app_conn_t *c) {
  if (!c->bl_paused) return;
  if (c->bl_prev) c->bl_prev->bl_next = c->bl_next;
  else c->bl_w->bl_paused = c->bl_next;
  if (c->bl_next) c->bl_next->bl_prev = c->bl_prev;
  c->bl_prev = c->bl_next = NULL;
  c->bl_w = NULL;
  c->bl_paused = 0;
}

/* The worker caught up (or is gone): its paused connections are read again. */
static void bl_resume_all(app_worker_t *w) {
  while (w->bl_paused) {
    app_conn_t *c = w->bl_paused;
    bl_unlink(c);
    if (!c->paused && !c->closing) uv_read_start(&c->h.s, on_conn_alloc, on_conn_read);
  }
}

static void bl_check(app_conn_t *c, app_worker_t *w) {
  if (c->bl_paused || c->closing || !w || worker_backlog(w) <= BACKLOG_HIGH) return;
  uv_read_stop(&c->h.s);
  c->bl_paused = 1;
  c->bl_w = w;
  c->bl_next = w->bl_paused;
  if (w->bl_paused) w->bl_paused->bl_prev = c;
  w->bl_paused = c;
}

static void on_worker_written(uv_write_t *r, int status) {
  wreq_t *q = (wreq_t *)r;
  app_worker_t *w = q->wk;
  tusk_buf_dispose(&q->buf);
  free(q);
  if (w && w->bl_paused && (status < 0 || worker_backlog(w) < BACKLOG_LOW)) bl_resume_all(w);
}

static void worker_flush(app_worker_t *w) {
  if (w->local || !w->pipe_open || w->out.len == 0) return;
  uv_buf_t b = uv_buf_init(w->out.data, (unsigned)w->out.len);
  size_t off = 0;
  if (uv_stream_get_write_queue_size((uv_stream_t *)&w->pipe) == 0) {
    int n = uv_try_write((uv_stream_t *)&w->pipe, &b, 1);
    if (n == (int)w->out.len) {
      tusk_buf_reset(&w->out);
      if (w->bl_paused) bl_resume_all(w);
      return;
    }
    if (n > 0) off = (size_t)n;
  }
  wreq_t *q = malloc(sizeof *q);
  if (!q) return;
  q->wk = w;
  q->c = NULL;
  q->buf = w->out;
  tusk_buf_init(&w->out);
  uv_buf_t rb = uv_buf_init(q->buf.data + off, (unsigned)(q->buf.len - off));
  if (uv_write(&q->w, (uv_stream_t *)&w->pipe, &rb, 1, on_worker_written) != 0) {
    tusk_buf_dispose(&q->buf);
    free(q);
  }
}

static void on_flush(uv_check_t *h) {
  for (app_worker_t *w = A.workers; w; w = w->next) worker_flush(w);
  uv_check_stop(&A.flusher);
}

/* The worker that takes a connection's events: its own while it lives and
 * is not being replaced, else the next ready one of the newest generation
 * (round robin). */
static app_worker_t *pick_worker(void) {
  int n = 0;
  for (app_worker_t *w = A.workers; w; w = w->next) {
    if (w->pipe_open && !w->stopping && w->generation == A.generation) n++;
  }
  if (n == 0) {
    for (app_worker_t *w = A.workers; w; w = w->next) {
      if (w->pipe_open && !w->stopping) n++;
    }
    if (n == 0) return NULL;
    unsigned k = A.rr++ % (unsigned)n;
    for (app_worker_t *w = A.workers; w; w = w->next) {
      if (w->pipe_open && !w->stopping && k-- == 0) return w;
    }
    return NULL;
  }
  unsigned k = A.rr++ % (unsigned)n;
  for (app_worker_t *w = A.workers; w; w = w->next) {
    if (w->pipe_open && !w->stopping && w->generation == A.generation && k-- == 0) return w;
  }
  return NULL;
}

static app_worker_t *conn_worker(app_conn_t *c) {
  app_worker_t *w = c->w;
  if (w && w->pipe_open && !w->stopping && (w->generation == A.generation || !w->ready)) return w;
  app_worker_t *nw = pick_worker();
  if (nw != w) {
    if (w) w->nconns--;
    if (nw) nw->nconns++;
    c->w = nw;
  }
  return c->w;
}

static void conn_event(app_conn_t *c, uint8_t type, const char *data, size_t len) {
  app_worker_t *w = conn_worker(c);
  if (!w) return;
  worker_put(w, type, 0, (uint16_t)c->svc->index, c->id, data, len);
  if (type == TUSK_APP_EV_DATA) bl_check(c, w);
}

/* ---- connections -------------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h) {
  app_conn_t *c = h->data;
  tusk_ws_destroy(c->ws);
  tusk_buf_dispose(&c->in);
  free(c->groups);
  free(c);
}

static void conn_close(app_conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  bl_unlink(c);
  while (c->ngroups) group_leave(c, c->groups[0]);
  table_del(c);
  service_t *s = c->svc;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->nconns--;
  if (A.mine) A.mine->conns[s->index]--;
  if (c->opened) conn_event(c, TUSK_APP_EV_CLOSE, NULL, 0);
  if (c->w) c->w->nconns--;
  uv_close((uv_handle_t *)&c->h.s, on_conn_closed);
}

static void on_conn_written(uv_write_t *r, int status) {
  wreq_t *q = (wreq_t *)r;
  app_conn_t *c = q->c;
  c->queued -= q->buf.len;
  tusk_buf_dispose(&q->buf);
  free(q);
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->full && c->queued <= SEND_BOUND / 2) {
    c->full = 0;
    conn_event(c, TUSK_APP_EV_DRAIN, NULL, 0);
  }
}

static void on_shutdown_done(uv_shutdown_t *r, int status) {
  app_conn_t *c = r->data;
  free(r);
  conn_close(c);
}

/* Takes b's storage. */
static void conn_write(app_conn_t *c, tusk_buf_t *b) {
  if (c->closing || b->len == 0) {
    tusk_buf_dispose(b);
    return;
  }
  size_t off = 0;
  if (c->queued == 0) {
    uv_buf_t ub = uv_buf_init(b->data, (unsigned)b->len);
    int n = uv_try_write(&c->h.s, &ub, 1);
    if (n == (int)b->len) {
      tusk_buf_dispose(b);
      return;
    }
    if (n > 0) off = (size_t)n;
    else if (n != UV_EAGAIN) {
      tusk_buf_dispose(b);
      conn_close(c);
      return;
    }
  }
  if (c->queued + b->len - off > SEND_HARD) {
    tusk_buf_dispose(b);
    TUSK_DEBUG("connection %llu: more than %u bytes unsent: closing", (unsigned long long)c->id, SEND_HARD);
    conn_close(c);
    return;
  }
  wreq_t *q = malloc(sizeof *q);
  if (!q) {
    tusk_buf_dispose(b);
    conn_close(c);
    return;
  }
  q->c = c;
  q->wk = NULL;
  q->buf = *b;
  tusk_buf_init(b);
  if (off) tusk_buf_consume(&q->buf, off);
  c->queued += q->buf.len;
  uv_buf_t ub = uv_buf_init(q->buf.data, (unsigned)q->buf.len);
  if (uv_write(&q->w, &c->h.s, &ub, 1, on_conn_written) != 0) {
    c->queued -= q->buf.len;
    tusk_buf_dispose(&q->buf);
    free(q);
    conn_close(c);
    return;
  }
  if (!c->full && c->queued > SEND_BOUND) {
    c->full = 1;
    conn_event(c, TUSK_APP_EV_FULL, NULL, 0);
  }
}

/* After what is queued: shut down the write side, then close. */
static void conn_close_after_writes(app_conn_t *c) {
  if (c->closing) return;
  uv_read_stop(&c->h.s);
  uv_shutdown_t *r = malloc(sizeof *r);
  if (!r || (r->data = c, uv_shutdown(r, &c->h.s, on_shutdown_done)) != 0) {
    free(r);
    conn_close(c);
  }
}

static void ws_flush(app_conn_t *c);

static void conn_send(app_conn_t *c, const char *data, size_t len, int raw) {
  if (c->svc->websocket) {
    if (!c->ws) return;
    /* Text unless it is not UTF-8 (then binary) or asked for binary. */
    int op = raw == 2 ? TUSK_WS_BINARY : TUSK_WS_TEXT;
    if (tusk_ws_send(c->ws, op, data, len) == -EINVAL && op == TUSK_WS_TEXT) tusk_ws_send(c->ws, TUSK_WS_BINARY, data, len);
    ws_flush(c);
    return;
  }
  tusk_buf_t b;
  tusk_buf_init(&b);
  if (tusk_framing_encode(raw ? TUSK_FRAMING_RAW : c->svc->framing, data, len, &b) != 0) {
    tusk_buf_dispose(&b);
    return;
  }
  conn_write(c, &b);
}

/* Reads land in one shared buffer; only a partial message is copied to
 * the connection (c->in), so an idle connection holds no input buffer. */
static char shared_in[64 * 1024];

static void conn_input(app_conn_t *c, const char *in, size_t len, size_t *used);

static void on_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  app_conn_t *c = h->data;
  if (c->in.len == 0) {
    *buf = uv_buf_init(shared_in, sizeof shared_in);
    return;
  }
  if (tusk_buf_reserve(&c->in, 64 * 1024) != 0) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

/* ---- websocket ------------------------------------------------------------------------ */

static void on_linger_shutdown(uv_shutdown_t *r, int status) {
  app_conn_t *c = r->data;
  free(r);
  if (status < 0) conn_close(c);
}

/* Both closes exchanged, or the engine failed: send FIN after what is
 * queued and read until the peer's FIN (dropping it), so that our close
 * frame is not destroyed by a reset (the heartbeat bounds the wait). */
static void on_shutdown_done(uv_shutdown_t *r, int status);

static void ws_finish(app_conn_t *c) {
  if (c->closing || c->lingering) return;
  c->lingering = 1;
  /* For PHP the connection is over now. */
  if (c->opened) {
    conn_event(c, TUSK_APP_EV_CLOSE, NULL, 0);
    c->opened = 0;
  }
  /* A clean closing handshake leaves nothing to read: close after the
   * write. Otherwise linger. */
  int clean = tusk_ws_close_received(c->ws) != 0;
  uv_shutdown_t *r = malloc(sizeof *r);
  if (!r || (r->data = c, uv_shutdown(r, &c->h.s, clean ? on_shutdown_done : on_linger_shutdown)) != 0) {
    free(r);
    conn_close(c);
  }
}

static void ws_flush(app_conn_t *c) {
  if (!c->ws || c->closing) return;
  if (tusk_ws_output_len(c->ws)) {
    tusk_buf_t b;
    tusk_buf_init(&b);
    if (tusk_ws_output_take(c->ws, &b) == 0) conn_write(c, &b);
    else tusk_buf_dispose(&b);
  }
  if (!c->closing && tusk_ws_done(c->ws)) ws_finish(c);
}

static void ws_on_message(void *ud, int opcode, const void *data, size_t len) {
  app_conn_t *c = ud;
  app_worker_t *w = conn_worker(c);
  if (!w) return;
  worker_put(w, TUSK_APP_EV_DATA, opcode == TUSK_WS_BINARY, (uint16_t)c->svc->index, c->id, data, len);
}

static void ws_on_pong(void *ud, const void *data, size_t len) { ((app_conn_t *)ud)->ws_pinged = 0; }

static void ws_on_close(void *ud, int code, const char *reason, size_t len) {
  /* Our echo is queued; ws_flush closes once it is written. */
}

static const tusk_ws_callbacks_t ws_callbacks = {ws_on_message, NULL, ws_on_pong, ws_on_close};

static void ws_reject(app_conn_t *c, int status, const char *reason, const char *extra) {
  tusk_buf_t b;
  tusk_buf_init(&b);
  tusk_buf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n%s\n",
                  status, reason, strlen(reason) + 1, extra ? extra : "", reason);
  conn_write(c, &b);
  TUSK_DEBUG("websocket handshake from %s refused: %d %s", c->remote, status, reason);
  if (!c->closing) {
    uv_read_stop(&c->h.s);
    uv_shutdown_t *r = malloc(sizeof *r);
    if (!r || (r->data = c, uv_shutdown(r, &c->h.s, on_shutdown_done)) != 0) {
      free(r);
      conn_close(c);
    }
  }
}

/* The HTTP/1.1 upgrade. Returns bytes consumed, 0 for more input, -1 when
 * the connection was refused. */
static int ws_handshake(app_conn_t *c, const char *in, size_t len) {
  tusk_h1_header_t hv[64];
  tusk_h1_request_t rq;
  memset(&rq, 0, sizeof rq);
  rq.headers = hv;
  tusk_h1_limits_t lim = {16 * 1024, 8 * 1024, 64};
  int n = tusk_h1_parse_request(in, len, &rq, &lim);
  if (n == TUSK_AGAIN) return 0;
  if (n < 0) {
    ws_reject(c, tusk_h1_error_status(n), "bad request", NULL);
    return -1;
  }
  const tusk_h1_header_t *up = tusk_h1_find_header(&rq, "upgrade");
  const tusk_h1_header_t *key = tusk_h1_find_header(&rq, "sec-websocket-key");
  const tusk_h1_header_t *ver = tusk_h1_find_header(&rq, "sec-websocket-version");
  const tusk_h1_header_t *ext = tusk_h1_find_header(&rq, "sec-websocket-extensions");
  if (rq.method_len != 3 || memcmp(rq.method, "GET", 3) != 0) {
    ws_reject(c, 405, "a WebSocket handshake is a GET", "Allow: GET\r\n");
    return -1;
  }
  if (!rq.upgrade || !up || up->value_len != 9 || strncasecmp(up->value, "websocket", 9) != 0) {
    ws_reject(c, 426, "this address speaks WebSocket only", "Upgrade: websocket\r\n");
    return -1;
  }
  if (!ver || tusk_ws_check_version(ver->value, ver->value_len) != 0) {
    ws_reject(c, 426, "unsupported WebSocket version", "Sec-WebSocket-Version: 13\r\n");
    return -1;
  }
  if (!key || tusk_ws_check_key(key->value, key->value_len) != 0) {
    ws_reject(c, 400, "bad Sec-WebSocket-Key", NULL);
    return -1;
  }
  const tusk_h1_header_t *origin = tusk_h1_find_header(&rq, "origin");
  if (!tusk_ws_origin_allowed(c->svc->origins, strlen(c->svc->origins), origin ? origin->value : NULL,
                              origin ? origin->value_len : 0)) {
    TUSK_DEBUG("websocket %s: origin %.*s is not in allowedOrigins: 403", c->remote, (int)origin->value_len,
               origin->value);
    ws_reject(c, 403, "origin not allowed", NULL);
    return -1;
  }
  char accept[TUSK_WS_ACCEPT_LEN + 1];
  if (tusk_ws_accept_key(key->value, key->value_len, accept) != 0) {
    conn_close(c);
    return -1;
  }
  /* permessage-deflate without context takeover both ways: compression
   * per message, and no zlib state kept by idle connections. */
  tusk_ws_config_t cfg = {TUSK_WS_SERVER, c->svc->max_msg, {0, 1, 1, 15, 15}, 0, 0, 64};
  char resp[TUSK_WS_EXT_MAX];
  tusk_ws_deflate_t pref = {0, 1, 1, 15, 15};
  int deflate = 0;
  if (ext) {
    /* Several Sec-WebSocket-Extensions lines count as one list. */
    tusk_buf_t all;
    tusk_buf_init(&all);
    for (size_t i = 0; i < rq.num_headers; i++) {
      if (hv[i].name_len == 24 && !strncasecmp(hv[i].name, "sec-websocket-extensions", 24)) {
        if (all.len) tusk_buf_append(&all, ",", 1);
        tusk_buf_append(&all, hv[i].value, hv[i].value_len);
      }
    }
    deflate = tusk_ws_deflate_negotiate(all.data, all.len, &pref, &cfg.deflate, resp, sizeof resp) == 1;
    tusk_buf_dispose(&all);
  }
  if (!deflate) cfg.deflate.enabled = 0;
  c->ws = tusk_ws_create(&cfg, &ws_callbacks, c);
  if (!c->ws) {
    conn_close(c);
    return -1;
  }
  tusk_buf_t b;
  tusk_buf_init(&b);
  tusk_buf_printf(&b,
                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: %s\r\n%s%s%sServer: tusk\r\n\r\n",
                  accept, deflate ? "Sec-WebSocket-Extensions: " : "", deflate ? resp : "", deflate ? "\r\n" : "");
  conn_write(c, &b);
  c->ws_open = 1;
  /* onConnect gets the address, then the handshake's head (Workerman's
   * onWebSocketConnect $httpHeader). */
  tusk_buf_t ev;
  tusk_buf_init(&ev);
  tusk_buf_printf(&ev, "%s\n", c->remote);
  tusk_buf_append(&ev, in, (size_t)n);
  conn_event(c, TUSK_APP_EV_OPEN, ev.data, ev.len);
  c->opened = 1;
  tusk_buf_dispose(&ev);
  return n;
}

static void on_heartbeat(uv_timer_t *t) {
  service_t *s = t->data;
  uint64_t now = uv_now(A.loop), idle = (uint64_t)A.conf->ws_ping * 1000;
  for (app_conn_t *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (!c->ws || c->closing || now - c->active_ms < idle) continue;
    if (c->lingering) {
      conn_close(c);
      continue;
    }
    if (c->ws_pinged) {
      /* No pong and nothing else for two periods: gone. */
      TUSK_DEBUG("websocket %llu (%s): no answer to a ping: closing", (unsigned long long)c->id, c->remote);
      tusk_ws_close(c->ws, TUSK_WS_GOING_AWAY, "ping timeout", 12);
      ws_flush(c);
      if (!c->closing) conn_close(c);
      continue;
    }
    c->ws_pinged = 1;
    c->active_ms = now;
    tusk_ws_ping(c->ws, "", 0);
    ws_flush(c);
  }
}

static void http_reject(app_conn_t *c, int status, const char *why);

/* http://, once a second: a request head not complete within
 * --header-timeout of its first byte, or a body with no bytes for
 * --body-timeout, gets 408 and the connection closes (slow clients cannot
 * hold connections with partial requests). */
static void on_http_sweep(uv_timer_t *t) {
  service_t *s = t->data;
  uint64_t now = uv_now(A.loop);
  uint64_t head_ms = (uint64_t)(A.conf->header_timeout * 1000), body_ms = (uint64_t)(A.conf->body_timeout * 1000);
  for (app_conn_t *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (c->closing || c->http_last || !c->http_started_ms || c->in.len == 0) continue;
    int head_done = memmem(c->in.data, c->in.len, "\r\n\r\n", 4) != NULL;
    if ((!head_done && head_ms && now - c->http_started_ms > head_ms) ||
        (head_done && body_ms && now - c->active_ms > body_ms))
      http_reject(c, 408, head_done ? "request body stalled" : "request head not received in time");
  }
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  app_conn_t *c = s->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0) return;
  if (c->lingering) {
    if (b->base != shared_in) tusk_buf_reset(&c->in);
    return;
  }
  c->active_ms = uv_now(A.loop);
  c->ws_pinged = 0;
  if (b->base == shared_in) {
    size_t used = 0;
    conn_input(c, shared_in, (size_t)nread, &used);
    if (!c->closing && used < (size_t)nread) tusk_buf_append(&c->in, shared_in + used, (size_t)nread - used);
  } else {
    c->in.len += (size_t)nread;
    size_t used = 0;
    conn_input(c, c->in.data, c->in.len, &used);
    if (c->closing) return;
    tusk_buf_consume(&c->in, used);
    if (c->in.len == 0) tusk_buf_dispose(&c->in);
  }
  /* http://: a request that is being read must arrive in time (on_http_sweep). */
  if (c->svc->http && !c->closing) {
    if (c->in.len == 0) c->http_started_ms = 0;
    else if (!c->http_started_ms) c->http_started_ms = c->active_ms;
  }
}

/* ---- http:// ------------------------------------------------------------------------
 * Each complete HTTP/1.1 request (head parsed and checked by the h1 parser,
 * body by Content-Length or chunked) is one DATA event whose payload is
 *   u8 flags (1: keep-alive), u32 LE head length, the head as received
 *   (request line, headers, CRLF CRLF), the body (chunked: decoded).
 * PHP (Tusk\Http\Request in runtime/app.php) reads it lazily and answers
 * with raw sends; a request without keep-alive is the connection's last.
 * Bad requests are answered here (400, 413, 414, 431, 501, 505) and the
 * connection closes. */

#define HTTP_MAX_HEAD (16 * 1024)
#define HTTP_MAX_HEADERS 100

static void http_reject(app_conn_t *c, int status, const char *why) {
  char b[512];
  int n = snprintf(b, sizeof b,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s\n",
                   status, tusk_http_reason(status), strlen(why) + 1, why);
  tusk_buf_t o;
  tusk_buf_init(&o);
  tusk_buf_append(&o, b, (size_t)TUSK_MIN(n, (int)sizeof b - 1));
  TUSK_DEBUG("connection %llu (%s): HTTP %d: %s", (unsigned long long)c->id, c->remote, status, why);
  conn_event(c, TUSK_APP_EV_ERROR, why, strlen(why));
  conn_write(c, &o);
  c->http_last = 1;
  conn_close_after_writes(c);
}

static void http_input(app_conn_t *c, const char *in, size_t len, size_t *used) {
  static tusk_buf_t ev; /* the event being built (reused) */
  size_t off = 0;
  while (off < len && !c->closing && !c->http_last) {
    tusk_h1_header_t hdrs[HTTP_MAX_HEADERS];
    tusk_h1_request_t req;
    memset(&req, 0, sizeof req);
    req.headers = hdrs;
    const tusk_h1_limits_t lim = {HTTP_MAX_HEAD, HTTP_MAX_HEAD, HTTP_MAX_HEADERS};
    /* Event: flags, head length, head, then the body read into place. */
    tusk_buf_reset(&ev);
    tusk_buf_append(&ev, "\0\0\0\0\0", 5);
    size_t head_len = 0;
    int n = tusk_h1_read_message(in + off, len - off, &req, &lim, c->svc->max_msg, &ev, &head_len);
    if (n == TUSK_AGAIN) {
      if (head_len && req.expect_continue && !c->http_continued) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        tusk_buf_t o;
        tusk_buf_init(&o);
        tusk_buf_append(&o, cont, sizeof cont - 1);
        conn_write(c, &o);
        c->http_continued = 1;
      }
      break;
    }
    if (n < 0) {
      http_reject(c, tusk_h1_error_status(n), tusk_h1_error_str(n));
      break;
    }
    /* The head goes between the length and the body. */
    size_t body_len = ev.len - 5;
    if (tusk_buf_reserve(&ev, head_len) != 0) {
      http_reject(c, 500, "out of memory");
      break;
    }
    memmove(ev.data + 5 + head_len, ev.data + 5, body_len);
    memcpy(ev.data + 5, in + off, head_len);
    ev.len += head_len;
    ev.data[0] = req.keep_alive ? 1 : 0;
    uint32_t hl = (uint32_t)head_len;
    memcpy(ev.data + 1, &hl, 4); /* little-endian hosts only, as the channel */
    conn_event(c, TUSK_APP_EV_DATA, ev.data, ev.len);
    c->http_continued = 0;
    if (!req.keep_alive) c->http_last = 1;
    off += (size_t)n;
  }
  if (ev.cap > 4u << 20) tusk_buf_dispose(&ev);
  /* After the last request, or an error, the rest is dropped. */
  *used = c->http_last || c->closing ? len : off;
}

/* Frames the bytes in[0..len) into events; *used: what was consumed. */
static void conn_input(app_conn_t *c, const char *in, size_t len, size_t *used) {
  size_t off = 0;
  if (c->svc->http) {
    http_input(c, in, len, used);
    return;
  }
  if (c->svc->websocket) {
    if (!c->ws_open) {
      int n = ws_handshake(c, in, len);
      if (n <= 0) {
        if (n == 0 && len > 16 * 1024) ws_reject(c, 431, "request head too large", NULL);
        *used = n == 0 ? 0 : len;
        return;
      }
      off = (size_t)n;
    }
    if (off < len) {
      int rc = tusk_ws_feed(c->ws, in + off, len - off);
      if (rc != 0) {
        const char *why = rc == TUSK_ELIMIT ? "message too big" : "protocol error";
        TUSK_DEBUG("websocket %llu (%s): %s", (unsigned long long)c->id, c->remote, why);
        conn_event(c, TUSK_APP_EV_ERROR, why, strlen(why));
      }
    }
    *used = len;
    ws_flush(c);
    return;
  }
  tusk_framing_t fr = c->svc->php_protocol ? TUSK_FRAMING_RAW : c->svc->framing;
  while (off < len && !c->closing) {
    const char *msg;
    size_t ml;
    int n = tusk_framing_next(fr, in + off, len - off, c->svc->max_msg, &msg, &ml);
    if (n == TUSK_AGAIN) break;
    if (n < 0) {
      const char *why = n == TUSK_ELIMIT ? "message too big" : "malformed frame";
      TUSK_DEBUG("connection %llu (%s): %s: closing", (unsigned long long)c->id, c->remote, why);
      conn_event(c, TUSK_APP_EV_ERROR, why, strlen(why));
      conn_close(c);
      *used = len;
      return;
    }
    conn_event(c, TUSK_APP_EV_DATA, msg, ml);
    off += (size_t)n;
  }
  *used = off;
}

static void conn_start(service_t *s, app_conn_t *c);

/* Out of descriptors, most often (libuv then drops the waiting clients):
 * say so, once a second; the listener stays. */
static void accept_failed(service_t *s, int err) {
  static uint64_t last;
  uint64_t now = uv_now(A.loop);
  if (last && now - last < 1000) return;
  last = now;
  TUSK_WARN("service %s: connections are being refused or about to be: %s%s", s->listen, uv_strerror(err),
            err == UV_EMFILE || err == UV_ENFILE || err == UV_EAGAIN ? " (out of file descriptors? raise ulimit -n)"
                                                                     : "");
}

static void on_accept(uv_stream_t *server, int status) {
  service_t *s = server->data;
  if (status < 0) {
    accept_failed(s, status);
    return;
  }
  app_conn_t *c = calloc(1, sizeof *c);
  if (!c) return;
  if (s->is_unix) uv_pipe_init(A.loop, &c->h.pipe, 0);
  else uv_tcp_init(A.loop, &c->h.tcp);
  c->h.s.data = c;
  int rc = uv_accept(server, &c->h.s);
  if (rc != 0 || A.stopping) {
    if (rc != 0) accept_failed(s, rc);
    c->closing = 1;
    uv_close((uv_handle_t *)&c->h.s, on_conn_closed);
    return;
  }
  conn_start(s, c);
}

static size_t nofile; /* RLIMIT_NOFILE: the most connections this master can hold */

/* An accepted (or handed over) connection: registered, announced, read. */
static void conn_start(service_t *s, app_conn_t *c) {
  /* libuv drops clients silently once descriptors run out: warn before. */
  if (nofile && A.count + 32 >= nofile) accept_failed(s, UV_EMFILE);
  c->id = ++A.next_id;
  c->svc = s;
  tusk_buf_init(&c->in);
  if (table_add(c) != 0) {
    c->closing = 1;
    uv_close((uv_handle_t *)&c->h.s, on_conn_closed);
    return;
  }
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  if (A.mine) A.mine->conns[s->index]++;
  if (s->is_unix) {
    snprintf(c->remote, sizeof c->remote, "unix:0");
  } else {
    uv_tcp_nodelay(&c->h.tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
      if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
      } else {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
      }
    }
    snprintf(c->remote, sizeof c->remote, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
  }
  c->active_ms = uv_now(A.loop);
  if (!s->websocket) {
    conn_event(c, TUSK_APP_EV_OPEN, c->remote, strlen(c->remote));
    c->opened = 1;
  }
  uv_read_start(&c->h.s, on_conn_alloc, on_conn_read);
}

/* ---- commands from workers ---------------------------------------------------------- */

static void send_to_group(group_t *g, const char *data, size_t len) {
  if (!g) return;
  /* The group may lose members while sending (a write error closes). */
  size_t n = g->n;
  app_conn_t **v = malloc(n * sizeof *v);
  if (!v) return;
  memcpy(v, g->v, n * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    if (table_find(v[i]->id) == v[i]) conn_send(v[i], data, len, 0);
  }
  free(v);
}

static void broadcast(service_t *s, const char *data, size_t len) {
  for (app_conn_t *c = s->conns, *next; c; c = next) {
    next = c->next;
    conn_send(c, data, len, 0);
  }
}

static void udp_sendto(uint64_t svc, const char *data, size_t len);

static void on_command(app_worker_t *w, const tusk_chan_frame_t *f, const char *p) {
  if (f->len < 8) return;
  uint64_t id;
  memcpy(&id, p, 8);
  const char *data = p + 8;
  size_t len = f->len - 8;
  app_conn_t *c = NULL;
  if (A.direct && !A.local &&
      (f->type == TUSK_APP_CMD_SEND_GROUP || f->type == TUSK_APP_CMD_SEND_UID || f->type == TUSK_APP_CMD_BCAST)) {
    /* Direct mode: the workers hold the connections; the sender did its own. */
    for (app_worker_t *x = A.workers; x; x = x->next) {
      if (x != w && x->pipe_open) worker_put(x, f->type, 0, f->seq, id, data, len);
    }
    return;
  }
  switch (f->type) {
    case TUSK_APP_READY:
      if (!w) return;
      w->ready = 1;
      TUSK_DEBUG("worker %d (pid %d) is ready", w->index, (int)w->pid);
      /* A reload: once all new workers are up, the old ones stop. */
      {
        int all = 1;
        for (app_worker_t *x = A.workers; x; x = x->next) {
          if (x->generation == A.generation && x->pipe_open && !x->ready) all = 0;
        }
        if (all) {
          for (app_worker_t *x = A.workers; x; x = x->next) {
            if (x->generation != A.generation && !x->stopping && x->pipe_open) {
              x->stopping = 1;
              worker_put(x, TUSK_APP_EV_STOP, 0, 0, 0, NULL, 0);
            }
          }
        }
      }
      return;
    case TUSK_APP_CMD_SEND_GROUP:
    case TUSK_APP_CMD_SEND_UID: {
      if (len < 2) return;
      size_t gl = (size_t)((unsigned char)data[0] << 8 | (unsigned char)data[1]);
      if (len < 2 + gl) return;
      if (f->type == TUSK_APP_CMD_SEND_UID) {
        char name[512];
        if (gl + 1 > sizeof name) return;
        name[0] = '\x01';
        memcpy(name + 1, data + 2, gl);
        send_to_group(group_get(name, gl + 1, 0), data + 2 + gl, len - 2 - gl);
      } else {
        send_to_group(group_get(data + 2, gl, 0), data + 2 + gl, len - 2 - gl);
      }
      return;
    }
    case TUSK_APP_CMD_SENDTO:
      udp_sendto(id, data, len);
      return;
    case TUSK_APP_CMD_BCAST:
      if (id == 0xffff) {
        for (int i = 0; i < A.nsvc; i++) broadcast(&A.svc[i], data, len);
      } else if (id < (uint64_t)A.nsvc) {
        broadcast(&A.svc[id], data, len);
      }
      return;
    default:
      break;
  }
  if (!(c = table_find(id)) || c->closing) return; /* closed meanwhile */
  switch (f->type) {
    case TUSK_APP_CMD_SEND:
      conn_send(c, data, len, 0);
      break;
    case TUSK_APP_CMD_SEND_BIN:
      conn_send(c, data, len, 2);
      break;
    case TUSK_APP_CMD_SEND_RAW:
      conn_send(c, data, len, 1);
      break;
    case TUSK_APP_CMD_CLOSE: {
      if (c->ws) {
        /* The closing handshake: our close, then theirs (or a timeout). */
        tusk_ws_close(c->ws, TUSK_WS_NORMAL, "", 0);
        ws_flush(c);
        break;
      }
      conn_close_after_writes(c);
      break;
    }
    case TUSK_APP_CMD_PAUSE:
      if (!c->paused) uv_read_stop(&c->h.s);
      c->paused = 1;
      break;
    case TUSK_APP_CMD_RESUME:
      if (c->paused && !c->bl_paused) uv_read_start(&c->h.s, on_conn_alloc, on_conn_read);
      c->paused = 0;
      break;
    case TUSK_APP_CMD_JOIN:
      if (len > 0 && len < 256) group_join(c, data, len);
      break;
    case TUSK_APP_CMD_LEAVE: {
      group_t *g = group_get(data, len, 0);
      if (g) group_leave(c, g);
      break;
    }
    case TUSK_APP_CMD_BIND: {
      char name[512];
      if (len == 0 || len + 1 > sizeof name) break;
      name[0] = '\x01';
      memcpy(name + 1, data, len);
      group_join(c, name, len + 1);
      break;
    }
    default:
      break;
  }
}

/* ---- the control socket ----------------------------------------------------------
 * Other processes (a `tusk serve` request calling Tusk\\send_to_group())
 * connect here and send command frames: the same as a worker's, without
 * READY. */

typedef struct control_conn_s {
  uv_pipe_t pipe; /* ipc: `tusk serve` passes WebSocket clients' sockets (ADOPT) */
  tusk_buf_t in;
} control_conn_t;

/* ADOPT: a `tusk serve` process got a WebSocket upgrade on its HTTP port
 * and hands the socket over (SCM_RIGHTS), with the bytes it read: the
 * request head and whatever followed. The first websocket:// service
 * takes it and answers the handshake as if it had accepted it. */
static void adopt(control_conn_t *k, const char *data, size_t len) {
  service_t *s = NULL;
  for (int i = 0; i < A.nsvc && !s; i++) {
    if (A.svc[i].websocket && A.svc[i].listening) s = &A.svc[i];
  }
  if (!uv_pipe_pending_count(&k->pipe) || uv_pipe_pending_type(&k->pipe) != UV_TCP) return;
  if (A.direct) {
    /* The master holds no connection in direct mode. */
    static int warned;
    if (!warned++) TUSK_WARN("a WebSocket client was handed over, but --mode direct cannot take it (use --mode pooled)");
    s = NULL;
  }
  app_conn_t *c = calloc(1, sizeof *c);
  if (!c) return;
  uv_tcp_init(A.loop, &c->h.tcp);
  c->h.s.data = c;
  if (uv_accept((uv_stream_t *)&k->pipe, &c->h.s) != 0 || !s || A.stopping) {
    if (!s && !A.direct) TUSK_WARN("a WebSocket client was handed over, but this app has no websocket:// service");
    c->closing = 1;
    uv_close((uv_handle_t *)&c->h.s, on_conn_closed);
    return;
  }
  conn_start(s, c);
  if (c->closing) return;
  size_t used = 0;
  conn_input(c, data, len, &used);
  if (!c->closing && used < len) tusk_buf_append(&c->in, data + used, len - used);
}

static void on_control_closed(uv_handle_t *h) {
  control_conn_t *k = h->data;
  tusk_buf_dispose(&k->in);
  free(k);
}

static void on_control_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  control_conn_t *k = h->data;
  if (tusk_buf_reserve(&k->in, 64 * 1024) != 0) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(k->in.data + k->in.len, (unsigned)(k->in.cap - k->in.len - 1));
}

static void on_control_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  control_conn_t *k = s->data;
  if (nread < 0) {
    uv_close((uv_handle_t *)&k->pipe, on_control_closed);
    return;
  }
  k->in.len += (size_t)nread;
  size_t off = 0;
  for (;;) {
    tusk_chan_frame_t f;
    const char *payload;
    int n = tusk_chan_get(k->in.data + off, k->in.len - off, &f, &payload);
    if (n == TUSK_AGAIN) break;
    if (n < 0 || f.len > (64u << 20)) {
      uv_close((uv_handle_t *)&k->pipe, on_control_closed);
      return;
    }
    off += (size_t)n;
    if (f.type == TUSK_APP_CMD_ADOPT && f.len >= 8) adopt(k, payload + 8, f.len - 8);
    else if (f.type >= TUSK_APP_CMD_SEND && f.type <= TUSK_APP_CMD_SENDTO) on_command(NULL, &f, payload);
  }
  tusk_buf_consume(&k->in, off);
}

static void on_control_accept(uv_stream_t *server, int status) {
  if (status < 0) return;
  control_conn_t *k = calloc(1, sizeof *k);
  if (!k) return;
  uv_pipe_init(A.loop, &k->pipe, 1);
  k->pipe.data = k;
  tusk_buf_init(&k->in);
  if (uv_accept(server, (uv_stream_t *)&k->pipe) != 0) {
    uv_close((uv_handle_t *)&k->pipe, on_control_closed);
    return;
  }
  uv_read_start((uv_stream_t *)&k->pipe, on_control_alloc, on_control_read);
}

static int control_listen(char *err, size_t errlen) {
  struct sockaddr_un un;
  if (strlen(A.sock_path) >= sizeof un.sun_path) {
    snprintf(err, errlen, "the control socket path %s is too long (set --app-socket)", A.sock_path);
    return -1;
  }
  unlink(A.sock_path);
  uv_pipe_init(A.loop, &A.control, 0);
  int rc = uv_pipe_bind(&A.control, A.sock_path);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&A.control, 128, on_control_accept);
  if (rc != 0) {
    snprintf(err, errlen, "cannot listen on the control socket %s: %s", A.sock_path, uv_strerror(rc));
    return -1;
  }
  chmod(A.sock_path, 0660);
  uv_unref((uv_handle_t *)&A.control);
  A.control_open = 1;
  return 0;
}

/* ---- direct mode: a worker's own loop ------------------------------------------------ */

static uv_loop_t local_loop;
static void on_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *b, const struct sockaddr *addr,
                        unsigned flags);
static int service_watch(service_t *s, char *err, size_t errlen);

/* To the master, from a direct-mode worker: READY and the sends it relays. */
static void local_to_master(const char *p, size_t n) {
  while (n > 0 && A.master_fd >= 0) {
    ssize_t w = write(A.master_fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      struct pollfd pf = {A.master_fd, POLLOUT, 0};
      poll(&pf, 1, 1000);
      continue;
    }
    if (w <= 0) return; /* the master is gone: its pipe's EOF stops us */
    p += w;
    n -= (size_t)w;
  }
}

static void local_commands(const char *frames, size_t len) {
  size_t off = 0;
  while (off < len) {
    tusk_chan_frame_t f;
    const char *payload;
    int n = tusk_chan_get(frames + off, len - off, &f, &payload);
    if (n < 0) break;
    if (f.type == TUSK_APP_READY || f.type == TUSK_APP_CMD_SEND_GROUP || f.type == TUSK_APP_CMD_SEND_UID ||
        f.type == TUSK_APP_CMD_BCAST)
      local_to_master(frames + off, (size_t)n);
    if (f.type != TUSK_APP_READY) on_command(A.local, &f, payload);
    off += (size_t)n;
  }
}

static void local_take(tusk_buf_t *into) {
  app_worker_t *w = A.local;
  if (w->out.len == 0) return;
  if (into->len == 0) {
    tusk_buf_t t = *into;
    *into = w->out;
    w->out = t;
  } else {
    tusk_buf_append(into, w->out.data, w->out.len);
    tusk_buf_reset(&w->out);
  }
}

static void on_local_timer(uv_timer_t *t) { A.local_expired = 1; }

static int local_run(int timeout_ms) {
  if (timeout_ms == 0) {
    uv_run(A.loop, UV_RUN_NOWAIT);
    return 1;
  }
  A.local_expired = 0;
  if (timeout_ms > 0) uv_timer_start(&A.local_timer, on_local_timer, (uint64_t)timeout_ms, 0);
  uv_run(A.loop, UV_RUN_ONCE);
  uv_timer_stop(&A.local_timer);
  return A.local_expired;
}

static int local_backend_fd(void) { return uv_backend_fd(A.loop); }
static int local_backend_timeout(void) { return uv_backend_timeout(A.loop); }

static const tusk_app_local_t local_hooks = {local_run, local_backend_fd, local_backend_timeout, local_commands,
                                             local_take};

/* The master's frames to a direct-mode worker: STOP, and the group, uid
 * and broadcast sends of the other workers and of the control socket. */
static void on_master_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  if (tusk_buf_reserve(&A.master_in, 64 * 1024) != 0) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(A.master_in.data + A.master_in.len, (unsigned)(A.master_in.cap - A.master_in.len - 1));
}

static void local_stop_listening(void) {
  for (int i = 0; i < A.nsvc; i++) {
    service_t *s = &A.svc[i];
    if (!s->listening) continue;
    s->listening = 0;
    uv_close((uv_handle_t *)&s->l, NULL);
    if ((s->websocket && A.conf->ws_ping > 0) || s->http) uv_close((uv_handle_t *)&s->heartbeat, NULL);
  }
}

static void on_master_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  if (nread < 0) {
    uv_read_stop(st);
    local_stop_listening();
    worker_put(A.local, TUSK_APP_EV_STOP, 0, 0, 0, NULL, 0);
    return;
  }
  A.master_in.len += (size_t)nread;
  size_t off = 0;
  for (;;) {
    tusk_chan_frame_t f;
    const char *payload;
    int n = tusk_chan_get(A.master_in.data + off, A.master_in.len - off, &f, &payload);
    if (n == TUSK_AGAIN) break;
    if (n < 0) {
      off = A.master_in.len;
      break;
    }
    off += (size_t)n;
    if (f.type == TUSK_APP_EV_STOP) {
      /* New connections go to the other workers from now on. */
      local_stop_listening();
      worker_put(A.local, TUSK_APP_EV_STOP, 0, 0, 0, NULL, 0);
    } else if (f.type >= TUSK_APP_CMD_SEND && f.type <= TUSK_APP_CMD_SENDTO) {
      on_command(A.local, &f, payload);
    }
  }
  tusk_buf_consume(&A.master_in, off);
}

/* In a freshly forked direct-mode worker: a loop of its own over the
 * master's listening sockets and its channel fd. Returns 0 or -1. */
static int local_start(int index, int slot, int fd) {
  if (uv_loop_init(&local_loop) != 0) return -1;
  A.loop = &local_loop;
  app_worker_t *w = calloc(1, sizeof *w);
  if (!w) return -1;
  w->index = index;
  w->pid = getpid();
  w->generation = A.generation;
  w->local = w->pipe_open = w->ready = 1;
  tusk_buf_init(&w->in);
  tusk_buf_init(&w->out);
  A.workers = w; /* the master's list is its business */
  A.local = w;
  A.mine = A.shm && slot >= 0 ? &A.shm[slot] : NULL;
  /* Unique among the workers and below 2^53 (exact as a JavaScript number):
   * pids are below 2^22, and a worker may open 2^30 connections. */
  A.next_id = (uint64_t)getpid() << 30;
  A.control_open = 0;
  A.master_fd = fd;
  tusk_buf_init(&A.master_in);
  uv_check_init(A.loop, &A.flusher);
  uv_unref((uv_handle_t *)&A.flusher);
  uv_timer_init(A.loop, &A.local_timer);
  uv_pipe_init(A.loop, &A.master_pipe, 0);
  if (uv_pipe_open(&A.master_pipe, fd) != 0) return -1;
  uv_read_start((uv_stream_t *)&A.master_pipe, on_master_alloc, on_master_read);
  char err[512];
  for (int i = 0; i < A.nsvc; i++) {
    service_t *s = &A.svc[i];
    s->conns = NULL;
    s->nconns = 0;
    if (!s->listening) continue;
    int rc;
    if (s->is_udp) {
      uv_udp_init(A.loop, &s->l.udp);
      rc = uv_udp_open(&s->l.udp, s->fd);
      s->l.udp.data = s;
      if (rc == 0) rc = uv_udp_recv_start(&s->l.udp, on_udp_alloc, on_udp_recv);
    } else {
      if (s->is_unix) {
        uv_pipe_init(A.loop, &s->l.pipe, 0);
        rc = uv_pipe_open(&s->l.pipe, s->fd);
      } else {
        uv_tcp_init(A.loop, &s->l.tcp);
        rc = uv_tcp_open(&s->l.tcp, s->fd);
      }
      s->l.tcp.data = s;
      if (rc == 0) rc = service_watch(s, err, sizeof err) == 0 ? 0 : -1;
    }
    if (rc != 0) {
      TUSK_ERROR("service %s: cannot watch the listening socket in this worker", s->listen);
      return -1;
    }
  }
  return 0;
}

/* A direct-mode worker's PHP has returned: its connections close
 * (WebSocket clients get 1001, going away), then the process exits. */
static void local_finish(void) {
  local_stop_listening();
  for (int i = 0; i < A.nsvc; i++) {
    for (app_conn_t *c = A.svc[i].conns, *next; c; c = next) {
      next = c->next;
      if (c->ws && c->ws_open) {
        tusk_ws_close(c->ws, TUSK_WS_GOING_AWAY, "", 0);
        ws_flush(c);
      }
      if (!c->closing) conn_close(c);
    }
  }
  uv_run(A.loop, UV_RUN_NOWAIT);
}

/* ---- workers ------------------------------------------------------------------------ */

static void spawn(int index);

static void worker_free_if_done(app_worker_t *w) {
  if (!w->reaped || !w->pipe_gone) return;
  /* Its connections pick another worker at their next event. */
  for (int i = 0; i < A.nsvc; i++) {
    for (app_conn_t *c = A.svc[i].conns; c; c = c->next) {
      if (c->w == w) c->w = NULL;
    }
  }
  app_worker_t **p = &A.workers;
  while (*p && *p != w) p = &(*p)->next;
  if (*p) *p = w->next;
  tusk_buf_dispose(&w->in);
  tusk_buf_dispose(&w->out);
  free(w);
}

static void on_worker_pipe_closed(uv_handle_t *h) {
  app_worker_t *w = h->data;
  w->pipe_gone = 1;
  worker_free_if_done(w);
}

static void worker_close_pipe(app_worker_t *w) {
  if (!w->pipe_open) return;
  bl_resume_all(w); /* their next events go to another worker */
  w->pipe_open = 0;
  uv_close((uv_handle_t *)&w->pipe, on_worker_pipe_closed);
}

static void on_worker_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  app_worker_t *w = h->data;
  if (tusk_buf_reserve(&w->in, 256 * 1024) != 0) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(w->in.data + w->in.len, (unsigned)(w->in.cap - w->in.len - 1));
}

static void on_worker_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  app_worker_t *w = s->data;
  if (nread < 0) {
    worker_close_pipe(w);
    return;
  }
  w->in.len += (size_t)nread;
  size_t off = 0;
  for (;;) {
    tusk_chan_frame_t f;
    const char *payload;
    int n = tusk_chan_get(w->in.data + off, w->in.len - off, &f, &payload);
    if (n == TUSK_AGAIN) break;
    if (n < 0) {
      TUSK_ERROR("worker %d sent a malformed frame; replacing it", w->index);
      kill(w->pid, SIGKILL);
      worker_close_pipe(w);
      return;
    }
    off += (size_t)n;
    on_command(w, &f, payload);
  }
  tusk_buf_consume(&w->in, off);
}

static void close_listeners_in_child(void) {
  for (int i = 0; i < A.nsvc; i++) {
    int fd = -1;
    if (!A.svc[i].listening) continue;
    if (uv_fileno((uv_handle_t *)&A.svc[i].l, &fd) == 0 && fd >= 0) close(fd);
  }
}

static void spawn(int index) {
  if (A.stopping) return;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    TUSK_ERROR("cannot create a worker channel: %s", strerror(errno));
    return;
  }
  int slot = -1;
  for (int i = 0; i < A.nslots && slot < 0; i++) {
    int used = 0;
    for (app_worker_t *x = A.workers; x && !used; x = x->next) used = x->slot == i;
    if (!used) slot = i;
  }
  if (slot >= 0) memset(&A.shm[slot], 0, sizeof A.shm[slot]);
  int sz = 1 << 20;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  pid_t pid = fork();
  if (pid < 0) {
    TUSK_ERROR("cannot fork a PHP worker: %s", strerror(errno));
    close(sv[0]);
    close(sv[1]);
    return;
  }
  if (pid == 0) {
    close(sv[0]);
    if (!A.direct) close_listeners_in_child();
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    prctl(PR_SET_NAME, "tusk-app", 0, 0, 0);
    char role[32];
    snprintf(role, sizeof role, "worker %d", index);
    tusk_log_set_role(role);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    tusk_php_worker_signals_ready();
    if (A.direct) {
      if (local_start(index, slot, sv[1]) != 0) _exit(1);
      int rc = tusk_php_app_run(A.runtime, A.conf->app_script, sv[1], index, &local_hooks);
      local_finish();
      _exit(rc);
    }
    _exit(tusk_php_app_run(A.runtime, A.conf->app_script, sv[1], index, NULL));
  }
  close(sv[1]);
  app_worker_t *w = calloc(1, sizeof *w);
  w->index = index;
  w->pid = pid;
  w->slot = slot;
  w->generation = A.generation;
  tusk_buf_init(&w->in);
  tusk_buf_init(&w->out);
  uv_pipe_init(A.loop, &w->pipe, 0);
  uv_pipe_open(&w->pipe, sv[0]);
  w->pipe.data = w;
  w->pipe_open = 1;
  w->next = A.workers;
  A.workers = w;
  uv_read_start((uv_stream_t *)&w->pipe, on_worker_alloc, on_worker_read);
  TUSK_DEBUG("worker %d started (pid %d)", index, (int)pid);
}

static void on_respawn(uv_timer_t *t) {
  int index = (int)(intptr_t)t->data;
  uv_close((uv_handle_t *)t, (uv_close_cb)free);
  spawn(index);
}

static void reap(void) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    app_worker_t *w = A.workers;
    while (w && w->pid != pid) w = w->next;
    if (!w) continue;
    w->reaped = 1;
    int expected = w->stopping || A.stopping;
    if (!expected && A.direct) {
      size_t held = 0;
      for (int i = 0; w->slot >= 0 && i < A.nsvc; i++) held += A.shm[w->slot].conns[i];
      if (WIFSIGNALED(st))
        TUSK_ERROR("worker %d (pid %d) was killed by signal %d (%s); its %zu connection(s) are gone (--mode direct: "
                   "each worker owns its connections)",
                   w->index, (int)pid, WTERMSIG(st), strsignal(WTERMSIG(st)), held);
      else
        TUSK_ERROR("worker %d (pid %d) exited with status %d; its %zu connection(s) are gone (--mode direct)",
                   w->index, (int)pid, WEXITSTATUS(st), held);
    } else if (!expected) {
      if (WIFSIGNALED(st))
        TUSK_ERROR("worker %d (pid %d) was killed by signal %d (%s); its %zu connection(s) stay open and move "
                   "to another worker",
                   w->index, (int)pid, WTERMSIG(st), strsignal(WTERMSIG(st)), w->nconns);
      else
        TUSK_ERROR("worker %d (pid %d) exited with status %d; its %zu connection(s) stay open", w->index, (int)pid,
                   WEXITSTATUS(st), w->nconns);
    }
    int index = w->index, gen = w->generation, was_ready = w->ready;
    worker_close_pipe(w);
    worker_free_if_done(w);
    if (!expected && gen == A.generation) {
      /* Backoff when it did not even boot. */
      uv_timer_t *t = malloc(sizeof *t);
      if (t) {
        uv_timer_init(A.loop, t);
        t->data = (void *)(intptr_t)index;
        uv_timer_start(t, on_respawn, was_ready ? 0 : 1000, 0);
      }
    }
  }
  if (A.stopping) {
    int left = 0;
    for (app_worker_t *w = A.workers; w; w = w->next) left += !w->reaped;
    if (!left) uv_stop(A.loop);
  }
}

/* ---- status ------------------------------------------------------------------------- */

static void write_status(void) {
  char tmp[PATH_MAX + 8];
  snprintf(tmp, sizeof tmp, "%s.tmp", A.status_path);
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  fprintf(f, "tusk run %s: master pid %d, generation %d\n", A.conf->app_script, (int)getpid(), A.generation);
  if (A.direct) {
    /* The workers hold the connections: their counters. */
    size_t total = 0;
    for (int i = 0; i < A.nsvc; i++) {
      A.svc[i].nconns = 0;
      for (app_worker_t *w = A.workers; w; w = w->next) {
        if (w->slot >= 0 && !w->reaped) A.svc[i].nconns += A.shm[w->slot].conns[i];
      }
      total += A.svc[i].nconns;
    }
    A.count = total;
    for (app_worker_t *w = A.workers; w; w = w->next) {
      w->nconns = 0;
      if (w->slot < 0 || w->reaped) continue;
      for (int i = 0; i < A.nsvc; i++) w->nconns += A.shm[w->slot].conns[i];
      w->events = A.shm[w->slot].events;
    }
  }
  fprintf(f, "services:\n");
  for (int i = 0; i < A.nsvc; i++)
    fprintf(f, "  %-32s %-16s %zu connection(s)\n", A.svc[i].listen, A.svc[i].name, A.svc[i].nconns);
  fprintf(f, "workers:%s\n", A.direct ? " (--mode direct: each holds its own connections)" : "");
  for (app_worker_t *w = A.workers; w; w = w->next)
    fprintf(f, "  worker %d pid %d %s, %zu connection(s), %llu event(s)\n", w->index, (int)w->pid,
            w->stopping ? "stopping" : w->ready ? "ready" : "starting", w->nconns, (unsigned long long)w->events);
  fprintf(f, "connections: %zu\n", A.count);
  fclose(f);
  rename(tmp, A.status_path);
}

/* ---- signals ------------------------------------------------------------------------ */

static void on_stop_timeout(uv_timer_t *t) {
  for (app_worker_t *w = A.workers; w; w = w->next) {
    if (!w->reaped) kill(w->pid, SIGKILL);
  }
}

static void begin_stop(void) {
  if (A.stopping) return;
  A.stopping = 1;
  TUSK_INFO("stopping: workers run onWorkerStop, then connections close");
  for (int i = 0; i < A.nsvc; i++) {
    if (A.svc[i].listening) uv_close((uv_handle_t *)&A.svc[i].l, NULL);
    A.svc[i].listening = 0;
  }
  if (A.control_open) uv_close((uv_handle_t *)&A.control, NULL);
  A.control_open = 0;
  for (app_worker_t *w = A.workers; w; w = w->next) {
    w->stopping = 1;
    worker_put(w, TUSK_APP_EV_STOP, 0, 0, 0, NULL, 0);
  }
  uv_timer_init(A.loop, &A.stop_timer);
  uv_timer_start(&A.stop_timer, on_stop_timeout, 10000, 0);
  uv_unref((uv_handle_t *)&A.stop_timer);
  reap();
}

static void reload(void) {
  if (A.stopping) return;
  A.generation++;
  TUSK_INFO("reloading: starting %d new worker(s); %s", A.conf->workers,
            A.direct ? "then the old ones close their connections (--mode direct)" : "connections stay open");
  tusk_php_opcache_reset();
  for (int i = 0; i < A.conf->workers; i++) spawn(i);
}

static void on_signal(uv_signal_t *h, int sig) {
  switch (sig) {
    case SIGCHLD:
      reap();
      break;
    case SIGHUP:
    case SIGUSR2:
      reload();
      break;
    case SIGUSR1:
      write_status();
      break;
    default:
      begin_stop();
  }
}

/* ---- start-up ----------------------------------------------------------------------- */

/* Runs the probe and fills A.svc from what it declared. */
static int probe(char *err, size_t errlen) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    snprintf(err, errlen, "cannot create a channel: %s", strerror(errno));
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(err, errlen, "cannot fork: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    close(sv[0]);
    tusk_log_set_role("probe");
    _exit(tusk_php_app_run(A.runtime, A.conf->app_script, sv[1], -1, NULL));
  }
  close(sv[1]);
  tusk_buf_t in;
  tusk_buf_init(&in);
  for (;;) {
    if (tusk_buf_reserve(&in, 64 * 1024) != 0) break;
    ssize_t r = read(sv[0], in.data + in.len, in.cap - in.len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    in.len += (size_t)r;
  }
  close(sv[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  tusk_chan_frame_t f;
  const char *p;
  int rc = -1;
  if (tusk_chan_get(in.data, in.len, &f, &p) > 0 && f.type == TUSK_APP_DECLARE && f.len >= 8) {
    const char *q = p + 8, *end = p + f.len;
    while (q + 2 <= end && A.nsvc < MAX_SERVICES) {
      service_t *s = &A.svc[A.nsvc];
      uint16_t ll, nl;
      memcpy(&ll, q, 2);
      q += 2;
      if (q + ll + 2 > end) break;
      snprintf(s->listen, sizeof s->listen, "%.*s", (int)ll, q);
      q += ll;
      memcpy(&nl, q, 2);
      q += 2;
      if (q + nl + 5 > end) break;
      snprintf(s->name, sizeof s->name, "%.*s", (int)nl, q);
      q += nl;
      s->php_protocol = *q++;
      uint32_t max;
      memcpy(&max, q, 4);
      q += 4;
      s->max_msg = max ? max : 1 << 20;
      uint16_t ol;
      if (q + 2 > end) break;
      memcpy(&ol, q, 2);
      q += 2;
      if (q + ol > end) break;
      snprintf(s->origins, sizeof s->origins, "%.*s", (int)ol, q);
      q += ol;
      s->index = A.nsvc++;
    }
    rc = 0;
  }
  tusk_buf_dispose(&in);
  if (rc != 0 || A.nsvc == 0) {
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
      snprintf(err, errlen, "%s failed before declaring its services (exit status %d; see the PHP error above)",
               A.conf->app_script, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
      snprintf(err, errlen, "%s crashed before declaring its services (signal %d)", A.conf->app_script,
               WTERMSIG(st));
    else
      snprintf(err, errlen,
               "%s declared no service: create a Tusk\\Worker('tcp://127.0.0.1:2345') (or text://, frame://, "
               "unix:///path) and call Tusk\\Worker::runAll()",
               A.conf->app_script);
    return -1;
  }
  return 0;
}

/* ---- udp:// ------------------------------------------------------------------------- */

static char udp_in[65536];

static void on_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  *buf = uv_buf_init(udp_in, sizeof udp_in);
}

/* A datagram: DGRAM event [u16 address length][address "ip:port"][payload]
 * to the next worker (round robin); there is no connection. */
static void on_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *b, const struct sockaddr *addr,
                        unsigned flags) {
  service_t *s = h->data;
  if (nread < 0 || !addr || (flags & UV_UDP_PARTIAL)) return;
  char ip[64] = "?", ev[80];
  int port = 0;
  if (addr->sa_family == AF_INET6) {
    uv_ip6_name((const struct sockaddr_in6 *)addr, ip, sizeof ip);
    port = ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
  } else {
    uv_ip4_name((const struct sockaddr_in *)addr, ip, sizeof ip);
    port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
  }
  int al = snprintf(ev + 2, sizeof ev - 2, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
  ev[0] = (char)(al >> 8);
  ev[1] = (char)al;
  app_worker_t *w = pick_worker();
  if (!w || worker_backlog(w) > BACKLOG_HIGH) return; /* best effort: dropped */
  tusk_buf_t d;
  tusk_buf_init(&d);
  tusk_buf_append(&d, ev, (size_t)al + 2);
  tusk_buf_append(&d, b->base, (size_t)nread);
  worker_put(w, TUSK_APP_EV_DGRAM, 0, (uint16_t)s->index, 0, d.data, d.len);
  tusk_buf_dispose(&d);
}

/* CMD_SENDTO: id is the service, data as in a DGRAM event. */
static void udp_sendto(uint64_t svc, const char *data, size_t len) {
  if (svc >= (uint64_t)A.nsvc || !A.svc[svc].is_udp || !A.svc[svc].listening || len < 2) return;
  size_t al = (size_t)((unsigned char)data[0] << 8 | (unsigned char)data[1]);
  if (al == 0 || al >= 80 || 2 + al > len) return;
  char a[80];
  memcpy(a, data + 2, al);
  a[al] = 0;
  char *colon = strrchr(a, ':');
  if (!colon) return;
  *colon = 0;
  int port = atoi(colon + 1);
  char *host = a;
  if (host[0] == '[') {
    host++;
    char *e = strchr(host, ']');
    if (e) *e = 0;
  }
  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
    return;
  uv_buf_t b = uv_buf_init((char *)data + 2 + al, (unsigned)(len - 2 - al));
  /* Datagrams are best effort: one that does not fit the socket's buffer now is dropped. */
  uv_udp_try_send(&A.svc[svc].l.udp, &b, 1, (const struct sockaddr *)&ss);
}

static int service_watch(service_t *s, char *err, size_t errlen);

static int listen_service(service_t *s, char *err, size_t errlen) {
  const char *a = s->listen;
  const char *sep = strstr(a, "://");
  if (!sep) {
    snprintf(err, errlen, "service '%s': the address needs a scheme, e.g. tcp://127.0.0.1:2345", a);
    return -1;
  }
  size_t sl = (size_t)(sep - a);
  const char *rest = sep + 3;
  if (sl == 3 && !strncmp(a, "tcp", 3)) s->framing = TUSK_FRAMING_RAW;
  else if (sl == 4 && !strncmp(a, "text", 4)) s->framing = TUSK_FRAMING_TEXT;
  else if (sl == 5 && !strncmp(a, "frame", 5)) s->framing = TUSK_FRAMING_FRAME;
  else if (sl == 9 && !strncmp(a, "websocket", 9)) s->websocket = 1;
  else if (sl == 4 && !strncmp(a, "http", 4)) s->http = 1;
  else if (sl == 3 && !strncmp(a, "udp", 3)) s->is_udp = 1;
  else if (sl == 4 && !strncmp(a, "unix", 4)) {
    s->framing = TUSK_FRAMING_RAW;
    s->is_unix = 1;
  } else {
    snprintf(err, errlen,
             "service '%s': unknown scheme '%.*s' (tcp, text, frame, http, websocket, udp and unix are served)",
             a, (int)sl, a);
    return -1;
  }
  int fd = -1;
  if (s->is_unix) {
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    if (strlen(rest) >= sizeof un.sun_path || !rest[0]) {
      snprintf(err, errlen, "service '%s': the socket path is empty or too long", a);
      return -1;
    }
    strcpy(un.sun_path, rest);
    struct stat stt;
    if (stat(rest, &stt) == 0 && S_ISSOCK(stt.st_mode)) unlink(rest);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof un) != 0 || listen(fd, 1024) != 0) {
      snprintf(err, errlen, "service '%s': cannot listen on %s: %s", a, rest, strerror(errno));
      if (fd >= 0) close(fd);
      return -1;
    }
    uv_pipe_init(A.loop, &s->l.pipe, 0);
    uv_pipe_open(&s->l.pipe, fd);
  } else {
    char host[256];
    const char *colon = strrchr(rest, ':');
    if (!colon || colon == rest || (size_t)(colon - rest) >= sizeof host) {
      snprintf(err, errlen, "service '%s': the address must be HOST:PORT", a);
      return -1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - rest), rest);
    if (host[0] == '[') {
      memmove(host, host + 1, strlen(host));
      char *e = strchr(host, ']');
      if (e) *e = 0;
    }
    char *endp;
    long port = strtol(colon + 1, &endp, 10);
    if (*endp || port < 0 || port > 65535) {
      snprintf(err, errlen, "service '%s': bad port '%s'", a, colon + 1);
      return -1;
    }
    int bound = 0;
    if (s->is_udp) {
      struct sockaddr_storage ss;
      if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) != 0 &&
          uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "service '%s': '%s' is not an IP address", a, host);
        return -1;
      }
      uv_udp_init(A.loop, &s->l.udp);
      int rc = uv_udp_bind(&s->l.udp, (const struct sockaddr *)&ss, UV_UDP_REUSEADDR);
      if (rc != 0) {
        snprintf(err, errlen, "service '%s': cannot bind: %s", a, uv_strerror(rc));
        return -1;
      }
      struct sockaddr_storage got;
      int gl = sizeof got;
      uv_udp_getsockname(&s->l.udp, (struct sockaddr *)&got, &gl);
      bound = ntohs(((struct sockaddr_in *)&got)->sin_port);
      if (port == 0) {
        char *p = strrchr(s->listen, ':');
        snprintf(p + 1, sizeof s->listen - (size_t)(p + 1 - s->listen), "%d", bound);
      }
      s->l.udp.data = s;
      s->listening = 1;
      uv_fileno((uv_handle_t *)&s->l.udp, &s->fd);
      if (!A.direct) uv_udp_recv_start(&s->l.udp, on_udp_alloc, on_udp_recv);
      return 0;
    }
    if (tusk_server_bind(host, (int)port, 0, &fd, &bound, err, errlen) != 0) return -1;
    if (port == 0) {
      /* Report the port the kernel chose (tests, --listen-style :0). */
      char *p = strrchr(s->listen, ':');
      snprintf(p + 1, sizeof s->listen - (size_t)(p + 1 - s->listen), "%d", bound);
    }
    uv_tcp_init(A.loop, &s->l.tcp);
    uv_tcp_open(&s->l.tcp, fd);
  }
  s->l.tcp.data = s;
  s->fd = fd;
  if (A.direct) {
    /* Bound and listening (listen() above); the workers accept. */
    s->listening = 1;
    return 0;
  }
  return service_watch(s, err, errlen);
}

/* Accepts on s (and pings its idle WebSocket clients) from A.loop. */
static int service_watch(service_t *s, char *err, size_t errlen) {
  const char *a = s->listen;
  int rc = uv_listen((uv_stream_t *)&s->l, 1024, on_accept);
  if (rc != 0) {
    snprintf(err, errlen, "service '%.200s': cannot listen: %s", a, uv_strerror(rc));
    return -1;
  }
  s->listening = 1;
  if (s->websocket && A.conf->ws_ping > 0) {
    uv_timer_init(A.loop, &s->heartbeat);
    s->heartbeat.data = s;
    uint64_t ms = (uint64_t)(A.conf->ws_ping * 1000);
    uv_timer_start(&s->heartbeat, on_heartbeat, ms, ms);
    uv_unref((uv_handle_t *)&s->heartbeat);
  } else if (s->http) {
    uv_timer_init(A.loop, &s->heartbeat);
    s->heartbeat.data = s;
    uv_timer_start(&s->heartbeat, on_http_sweep, 1000, 1000);
    uv_unref((uv_handle_t *)&s->heartbeat);
  }
  return 0;
}

int tusk_app_master_run(tusk_conf_t *conf, const char *argv0) {
  memset(&A, 0, sizeof A);
  A.conf = conf;
  A.direct = conf->direct;
  A.master_fd = -1;
  if (A.direct) {
    /* Counters per worker (a reload briefly runs two generations). */
    A.nslots = TUSK_MAX(conf->workers, 1) * 3 + 2;
    A.shm = mmap(NULL, sizeof *A.shm * (size_t)A.nslots, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (A.shm == MAP_FAILED) {
      A.shm = NULL;
      A.nslots = 0;
    }
  }
  A.runtime = getenv("TUSK_RUNTIME") ? getenv("TUSK_RUNTIME") : TUSK_RUNTIME_PHP;
  signal(SIGPIPE, SIG_IGN);
  if (access(A.runtime, R_OK) != 0) {
    fprintf(stderr, "tusk: the PHP runtime %s is missing (set TUSK_RUNTIME to src/php/runtime/app.php)\n",
            A.runtime);
    return 1;
  }
  if (tusk_php_startup(conf, argv0) != 0) return 1;
  uv_loop_t tmp;
  if (uv_loop_init(&tmp) == 0) uv_loop_close(&tmp);
  char err[1024];
  if (probe(err, sizeof err) != 0) {
    fprintf(stderr, "tusk: %s\n", err);
    return 1;
  }
  A.loop = uv_default_loop();
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    /* Use the hard limit if we may; each connection is one descriptor. */
    if (rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
      getrlimit(RLIMIT_NOFILE, &rl);
    }
    nofile = (size_t)rl.rlim_cur;
    TUSK_INFO("open-files limit %zu: at most about %zu client connections (raise it with ulimit -n)", nofile,
              nofile > 32 ? nofile - 32 : 0);
  }
  for (int i = 0; i < A.nsvc; i++) {
    if (listen_service(&A.svc[i], err, sizeof err) != 0) {
      fprintf(stderr, "tusk: %s\n", err);
      return 1;
    }
  }
  uv_check_init(A.loop, &A.flusher);
  uv_unref((uv_handle_t *)&A.flusher);
  int sigs[] = {SIGCHLD, SIGHUP, SIGUSR2, SIGUSR1, SIGTERM};
  for (int i = 0; i < 5; i++) {
    uv_signal_init(A.loop, &A.sig[i]);
    uv_signal_start(&A.sig[i], on_signal, sigs[i]);
    uv_unref((uv_handle_t *)&A.sig[i]);
  }
  uv_signal_t sigint;
  uv_signal_init(A.loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_unref((uv_handle_t *)&sigint);
  snprintf(A.status_path, sizeof A.status_path, "%s", conf->pid_file);
  snprintf(A.pid_path, sizeof A.pid_path, "%s", conf->pid_file);
  size_t pl = strlen(A.status_path);
  if (pl > 4 && !strcmp(A.status_path + pl - 4, ".pid")) A.status_path[pl - 4] = 0;
  strncat(A.status_path, ".status", sizeof A.status_path - strlen(A.status_path) - 1);
  if (conf->app_socket) snprintf(A.sock_path, sizeof A.sock_path, "%s", conf->app_socket);
  else {
    snprintf(A.sock_path, sizeof A.sock_path, "%s", A.status_path);
    A.sock_path[strlen(A.sock_path) - strlen(".status")] = 0;
    strncat(A.sock_path, ".sock", sizeof A.sock_path - strlen(A.sock_path) - 1);
  }
  if (control_listen(err, sizeof err) != 0) {
    fprintf(stderr, "tusk: %s\n", err);
    return 1;
  }
  FILE *pf = fopen(A.pid_path, "w");
  if (pf) {
    fprintf(pf, "%d\n", (int)getpid());
    fclose(pf);
  } else {
    TUSK_WARN("cannot write the pid file %s: %s (stop/reload/status will not find this server)", A.pid_path,
              strerror(errno));
  }
  for (int i = 0; i < A.nsvc; i++)
    TUSK_INFO("service %d: %s%s%s, %d PHP worker(s)", i, A.svc[i].listen, A.svc[i].name[0] ? " " : "",
              A.svc[i].name, conf->workers);
  TUSK_INFO("control socket: %s (Tusk\\send_to_group() & co. from other PHP processes, with TUSK_APP_SOCKET)",
            A.sock_path);
  for (int i = 0; i < conf->workers; i++) spawn(i);
  uv_run(A.loop, UV_RUN_DEFAULT);
  /* Stopped: close what is left. */
  for (int i = 0; i < A.nsvc; i++) {
    for (app_conn_t *c = A.svc[i].conns, *next; c; c = next) {
      next = c->next;
      conn_close(c);
    }
  }
  uv_run(A.loop, UV_RUN_NOWAIT);
  for (app_worker_t *w = A.workers, *next; w; w = next) {
    next = w->next;
    tusk_buf_dispose(&w->in);
    tusk_buf_dispose(&w->out);
    free(w);
  }
  while (A.groups) {
    group_t *g = A.groups;
    A.groups = g->next;
    free(g->v);
    free(g->name);
    free(g);
  }
  free(A.table);
  if (A.shm) munmap(A.shm, sizeof *A.shm * (size_t)A.nslots);
  tusk_php_shutdown();
  unlink(A.pid_path);
  unlink(A.status_path);
  unlink(A.sock_path);
  TUSK_INFO("stopped");
  return 0;
}

/* 1 while pid runs (a zombie, not yet reaped by its parent, does not). */
static int alive(int pid) {
  if (kill(pid, 0) != 0) return 0;
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')');
  return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

int tusk_app_control(const tusk_conf_t *conf) {
  FILE *f = fopen(conf->pid_file, "r");
  int pid = 0;
  if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 0 || !alive(pid)) {
    if (f) fclose(f);
    fprintf(stderr, "tusk: %s is not running (no live pid in %s)\n", conf->app_script, conf->pid_file);
    return 1;
  }
  fclose(f);
  const char *act = conf->app_action;
  if (!strcmp(act, "stop")) {
    kill(pid, SIGTERM);
    for (int i = 0; i < 300 && alive(pid); i++) usleep(20 * 1000);
    if (alive(pid)) {
      fprintf(stderr, "tusk: pid %d did not stop within 15 s\n", pid);
      return 1;
    }
    printf("stopped (pid %d)\n", pid);
    return 0;
  }
  if (!strcmp(act, "reload")) {
    kill(pid, SIGUSR2);
    printf("reloading (pid %d): new workers start, connections stay open\n", pid);
    return 0;
  }
  /* status */
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", conf->pid_file);
  size_t pl = strlen(path);
  if (pl > 4 && !strcmp(path + pl - 4, ".pid")) path[pl - 4] = 0;
  strncat(path, ".status", sizeof path - strlen(path) - 1);
  struct stat before;
  time_t t0 = stat(path, &before) == 0 ? before.st_mtime : 0;
  long n0 = stat(path, &before) == 0 ? before.st_mtim.tv_nsec : 0;
  kill(pid, SIGUSR1);
  for (int i = 0; i < 100; i++) {
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mtime != t0 || st.st_mtim.tv_nsec != n0)) break;
    usleep(20 * 1000);
  }
  FILE *sf = fopen(path, "r");
  if (!sf) {
    fprintf(stderr, "tusk: no status from pid %d (%s)\n", pid, path);
    return 1;
  }
  char line[1024];
  while (fgets(line, sizeof line, sf)) fputs(line, stdout);
  fclose(sf);
  return 0;
}
