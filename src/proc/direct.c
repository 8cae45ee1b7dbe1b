/* Direct mode: a PHP worker that owns its connections.
 *
 * Every worker accepts on the listening socket the master created, runs
 * the same HTTP/1.1 stack on its own libuv loop, and runs PHP inline when
 * a request is complete. No hand-off between processes: the fastest shape,
 * at the price that a slow PHP request delays the other connections of the
 * same worker (the loop does not run while PHP does). Bodies are still
 * read completely before PHP runs and responses are written by the loop,
 * so slow clients hold no PHP time. */
#include "proc/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "core/common.h"
#include "core/log.h"
#include "http/h1_conn.h"
#include "net/server.h"
#include "php/sapi.h"
#include "proc/channel.h"
#include "proc/scoreboard.h"

static struct {
  uv_loop_t loop;
  tusk_http_ctx_t http;
  uv_tcp_t listener;
  uv_tcp_t tls_listener;
  int tls_listening;
  uv_async_t term;
  uv_check_t runner; /* classic mode: runs queued requests after each poll */
  tusk_http_job_t *qhead, *qtail; /* requests waiting for this process's PHP */
  int running;
  const tusk_conf_t *conf;
  tusk_slot_t *slot;
  /* The request whose PHP runs now, NULL once its client went away (the
   * protocol cancels it before freeing it, see direct_cancel()). The sink
   * reaches the request only through this, never through a saved pointer:
   * the loop may run while PHP does (a slow client, worker mode). */
  tusk_http_job_t *current;
  uint64_t served;
  int exit_code;
} D;

static char worker_marker; /* c->worker while its PHP runs here */

/* ---- the sink: frames go straight to the connection -------------------- */

static int direct_write(void *ctx, const char *frames, size_t len) {
  size_t off = 0;
  while (off < len) {
    tusk_chan_frame_t f;
    const char *payload;
    int n = tusk_chan_get(frames + off, len - off, &f, &payload);
    if (n < 0) return TUSK_EPROTO;
    off += (size_t)n;
    tusk_http_job_t *c = D.current;
    if (!c || c->worker != (void *)&worker_marker) continue; /* the connection went away */
    switch (f.type) {
      case TUSK_CHAN_HEAD:
        c->ops->head(c, payload, f.len);
        break;
      case TUSK_CHAN_INFO:
        c->ops->info(c, payload, f.len);
        break;
      case TUSK_CHAN_BODY:
        c->ops->body(c, payload, f.len, f.flags & TUSK_CHAN_F_FLUSH);
        /* A slow client: run the loop (other connections' requests only
         * queue meanwhile) until it has taken half of what waits, or is
         * gone. --request-timeout bounds the wait, as for any request. */
        if (c->ops->pending && c->ops->pending(c) > D.conf->output_buffer) {
          while (D.current == c && c->ops->pending(c) > D.conf->output_buffer / 2) uv_run(&D.loop, UV_RUN_ONCE);
          /* uv_stop() from on_drained() in there ended only the inner run. */
          if (D.http.draining && D.http.nconns == 0) uv_stop(&D.loop);
        }
        break;
      case TUSK_CHAN_END:
        c->worker = NULL;
        c->ops->end(c);
        break;
      default:
        break;
    }
  }
  return 0;
}

static int direct_aborted(void *ctx, uint16_t seq) {
  tusk_http_job_t *c = D.current;
  if (!c || c->worker != (void *)&worker_marker) return 1;
  return c->ops->aborted ? c->ops->aborted(c) : 0;
}

/* ---- the pool interface, served by this process ---------------------------- */

static void begin_drain(void);

/* Splits c's REQ frame into a job whose sink is c itself. */
static int make_job(tusk_http_job_t *c, tusk_php_job_t *job, tusk_php_sink_t *sink) {
  static tusk_chan_var_t *vars; /* grown to the largest request seen */
  static size_t cap;
  tusk_chan_frame_t f;
  const char *payload, *body;
  size_t bodylen;
  if (tusk_chan_get(c->frame.data, c->frame.len, &f, &payload) < 0) return -1;
  int nv = tusk_chan_req_parse_all(payload, f.len, &vars, &cap, &body, &bodylen);
  if (nv < 0) return -1;
  *sink = (tusk_php_sink_t){direct_write, direct_aborted, NULL};
  *job = (tusk_php_job_t){sink, f.seq, vars, nv, body, bodylen};
  c->worker = (void *)&worker_marker;
  D.current = c;
  /* The master enforces --request-timeout from the scoreboard. */
  size_t wl = strnlen(c->what, sizeof c->what);
  if (wl >= sizeof D.slot->what) wl = sizeof D.slot->what - 1;
  memcpy(D.slot->what, c->what, wl);
  D.slot->what[wl] = '\0';
  D.slot->busy_since_ms = tusk_monotonic_ms();
  return 0;
}

/* The request is over: make sure its client got an answer. */
static void job_done(tusk_http_job_t *c) {
  D.slot->busy_since_ms = 0;
  if (c && c->worker == (void *)&worker_marker) {
    c->worker = NULL; /* no END arrived (cannot happen with a healthy SAPI) */
    c->ops->fail(c, 502);
  }
  D.served++;
}

static tusk_http_job_t *queue_pop(void) {
  tusk_http_job_t *x = D.qhead;
  if (!x) return NULL;
  D.qhead = x->qnext;
  if (D.qhead) D.qhead->qprev = NULL;
  else D.qtail = NULL;
  x->qnext = x->qprev = NULL;
  x->queued = 0;
  return x;
}

static void run_one(tusk_http_job_t *c) {
  tusk_php_job_t job;
  tusk_php_sink_t sink;
  if (make_job(c, &job, &sink) != 0) {
    c->ops->fail(c, 500); /* never leave the client waiting */
    return;
  }
  if (D.conf->max_requests && D.served + 1 >= (uint64_t)D.conf->max_requests && !D.http.draining) {
    /* The last one: drain first, so its response says Connection: close. */
    TUSK_INFO("request %llu of --max-requests %d: recycling this worker after it",
              (unsigned long long)D.served + 1, D.conf->max_requests);
    D.exit_code = 3; /* TUSK_PHP_WORKER_RECYCLE */
    begin_drain();
  }
  tusk_php_run(&job);
  c = D.current;
  D.current = NULL;
  job_done(c);
}

/* ---- worker mode: the handler waits for requests by running the loop ---- */

static int worker_next(void *ctx, tusk_php_job_t *job) {
  static tusk_php_sink_t sink;
  for (;;) {
    tusk_http_job_t *c = queue_pop();
    if (c) {
      if (make_job(c, job, &sink) != 0) {
        c->ops->fail(c, 500);
        continue;
      }
      return 1;
    }
    /* Draining: serve until the last connection is gone (one accepted
     * just before may still send its request). */
    if (D.http.draining && D.http.nconns == 0) return 0;
    tusk_php_worker_idle();
    uv_run(&D.loop, UV_RUN_ONCE);
  }
}

/* The worker script stops after this request (a limit, an exception):
 * drain now so the response tells the client to reconnect. */
static void worker_stopping(void *ctx) { begin_drain(); }

static void worker_done(void *ctx) {
  tusk_http_job_t *c = D.current;
  D.current = NULL;
  job_done(c);
}

static void on_runner(uv_check_t *h);

static int direct_submit(tusk_http_job_t *c) {
  c->queued = 1;
  c->qnext = NULL;
  c->qprev = D.qtail;
  if (D.qtail) D.qtail->qnext = c;
  else D.qhead = c;
  D.qtail = c;
  /* In worker mode the script picks requests up in worker_next(). Here
   * the runner takes it after this loop iteration's I/O: PHP never runs
   * under a protocol's callback, so the loop may run inside PHP. */
  if (!D.conf->worker_script && !D.running) uv_check_start(&D.runner, on_runner);
  return 0;
}

static void on_runner(uv_check_t *h) {
  if (D.running) return; /* the loop runs inside a request: it waits */
  D.running = 1;
  tusk_http_job_t *x;
  while ((x = queue_pop()) != NULL) run_one(x);
  D.running = 0;
  uv_check_stop(&D.runner);
}

static void direct_cancel(tusk_http_job_t *c) {
  if (c->queued) {
    if (c->qprev) c->qprev->qnext = c->qnext;
    else D.qhead = c->qnext;
    if (c->qnext) c->qnext->qprev = c->qprev;
    else D.qtail = c->qprev;
    c->qnext = c->qprev = NULL;
    c->queued = 0;
  }
  c->worker = NULL; /* a running script sees connection_aborted() */
  if (D.current == c) D.current = NULL; /* it is about to be freed */
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void on_drained(tusk_http_ctx_t *ctx) { uv_stop(&D.loop); }

static size_t count_all_conns(tusk_http_ctx_t *ctx) {
  size_t n = 0;
  for (int i = 0; i < tusk_board_slots; i++) {
    if (tusk_board[i].pid != 0) n += (size_t)TUSK_MAX(tusk_board[i].conns, 0);
  }
  return n;
}

static void on_term_signal(int sig) { uv_async_send(&D.term); }

static void begin_drain(void) {
  if (D.http.draining) return;
  uv_close((uv_handle_t *)&D.listener, NULL);
  if (D.tls_listening) uv_close((uv_handle_t *)&D.tls_listener, NULL);
  tusk_http_drain(&D.http);
}

static void on_term(uv_async_t *a) { begin_drain(); }

void tusk_worker_direct_main(const tusk_conf_t *conf, int listen_fd, int tls_fd, struct tusk_tls_ctx_s *tls,
                             int index, tusk_slot_t *slot) {
  char role[32];
  snprintf(role, sizeof role, "worker %d", index);
  tusk_log_set_role(role);
  prctl(PR_SET_NAME, "tusk-worker", 0, 0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  D.conf = conf;
  D.slot = slot;
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR2, SIG_IGN);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);

  char err[256];
  /* A fresh loop: the master's loop belongs to the master. libuv's signal
   * watchers are not used here (their fds were closed after fork), so
   * SIGTERM reaches the loop through an async handle. */
  if (uv_loop_init(&D.loop) != 0 || tusk_http_ctx_init(&D.http, &D.loop, conf, err, sizeof err) != 0) {
    TUSK_ERROR("cannot start: %s", err);
    _exit(1);
  }
  D.http.php_submit = direct_submit;
  D.http.php_cancel = direct_cancel;
  D.http.on_drained = on_drained;
  D.http.own_conns = &slot->conns;
  D.http.count_conns = count_all_conns;
  if (tusk_server_listen_fd(&D.http, &D.listener, listen_fd, err, sizeof err) != 0) {
    TUSK_ERROR("%s", err);
    _exit(1);
  }
  if (tls_fd >= 0 && tls) {
    D.http.tls = tls;
    D.http.tls_listener = &D.tls_listener;
    if (tusk_server_listen_fd(&D.http, &D.tls_listener, tls_fd, err, sizeof err) != 0) {
      TUSK_ERROR("%s", err);
      _exit(1);
    }
    D.tls_listening = 1;
    if (conf->tls_ocsp) tusk_server_ocsp_refresher_start(&D.loop, tls, conf->tls_ocsp_refresh);
  }
  uv_check_init(&D.loop, &D.runner);
  uv_unref((uv_handle_t *)&D.runner);
  uv_async_init(&D.loop, &D.term, on_term);
  uv_unref((uv_handle_t *)&D.term);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term_signal;
  sigaction(SIGTERM, &sa, NULL);
  tusk_php_worker_signals_ready();
  if (conf->worker_script) {
    tusk_php_worker_io_t io = {worker_next, NULL, worker_done, worker_stopping, NULL,
                               {(uint64_t)conf->max_requests, conf->max_worker_memory, conf->debug_state}};
    int rc = tusk_php_worker_run(conf->worker_script, &io);
    if (rc != 0) D.exit_code = rc;
    /* Finish what is being written, then leave. */
    begin_drain();
    if (D.http.nconns > 0) uv_run(&D.loop, UV_RUN_DEFAULT);
    _exit(D.exit_code);
  }
  uv_run(&D.loop, UV_RUN_DEFAULT);
  _exit(D.exit_code);
}
