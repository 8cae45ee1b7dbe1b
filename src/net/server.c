#include "net/server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "net/tls.h"

static void on_connection(uv_stream_t *server, int status) {
  tusk_http_ctx_t *ctx = server->data;
  if (status < 0) {
    TUSK_WARN("accept failed: %s", uv_strerror(status));
    return;
  }
  tusk_h1_conn_t *c = tusk_h1_conn_alloc(ctx);
  if (!c) {
    TUSK_ERROR("out of memory accepting a connection");
    return;
  }
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    tusk_h1_conn_free_unstarted(c);
    return;
  }
  size_t open = ctx->count_conns ? ctx->count_conns(ctx) : ctx->nconns;
  if (ctx->draining || open >= (size_t)ctx->conf->max_connections) {
    static uint64_t last_warn;
    uint64_t now = uv_now(ctx->loop);
    if (!ctx->draining && now - last_warn > 1000) {
      TUSK_WARN("--max-connections %d reached: closing new connections", ctx->conf->max_connections);
      last_warn = now;
    }
    tusk_h1_conn_free_unstarted(c);
    return;
  }
  tusk_h1_conn_start(ctx, c, (uv_tcp_t *)server == ctx->tls_listener);
}

int tusk_server_bind(const char *host, int port, int reuseport, int *fd, int *bound_port, char *err,
                     size_t errlen) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int rc;
  if (strchr(host, ':')) {
    rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
    sl = sizeof(struct sockaddr_in6);
  } else {
    rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    sl = sizeof(struct sockaddr_in);
  }
  if (rc != 0) {
    snprintf(err, errlen, "cannot listen on '%s': not an IP address (use e.g. 127.0.0.1 or 0.0.0.0)", host);
    return -1;
  }
  int s = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) {
    snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
    return -1;
  }
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport) setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(s, (struct sockaddr *)&ss, sl) != 0 || listen(s, 4096) != 0) {
    int e = errno;
    snprintf(err, errlen, "cannot listen on %s:%d: %s%s", host, port, strerror(e),
             e == EADDRINUSE ? " (another server uses this port; pick another with --listen)" : "");
    close(s);
    return -1;
  }
  sl = sizeof ss;
  getsockname(s, (struct sockaddr *)&ss, &sl);
  *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
  *fd = s;
  return 0;
}

int tusk_server_listen_fd(tusk_http_ctx_t *ctx, uv_tcp_t *listener, int fd, char *err, size_t errlen) {
  int rc;
  uv_tcp_init(ctx->loop, listener);
  listener->data = ctx;
  if ((rc = uv_tcp_open(listener, fd)) != 0 || (rc = uv_listen((uv_stream_t *)listener, 4096, on_connection)) != 0) {
    snprintf(err, errlen, "cannot accept on the listening socket: %s", uv_strerror(rc));
    return rc;
  }
  return 0;
}

/* ---- periodic OCSP refresh ------------------------------------------------ */

static struct {
  uv_timer_t timer;
  uv_work_t work;
  struct tusk_tls_ctx_s *tls;
  int busy, rc;
  char err[512];
} ocsp;

static void ocsp_work(uv_work_t *w) { ocsp.rc = tusk_tls_ctx_refresh_ocsp(ocsp.tls, ocsp.err, sizeof ocsp.err); }

static void ocsp_done(uv_work_t *w, int status) {
  ocsp.busy = 0;
  if (status != 0) return;
  if (ocsp.rc > 0) TUSK_INFO("OCSP: refreshed the staples of %d certificate(s)", ocsp.rc);
  else if (ocsp.rc < 0) TUSK_WARN("OCSP: %s (keeping the previous staples)", ocsp.err);
}

static void ocsp_tick(uv_timer_t *t) {
  if (ocsp.busy) return;
  ocsp.busy = 1;
  ocsp.err[0] = '\0';
  if (uv_queue_work(t->loop, &ocsp.work, ocsp_work, ocsp_done) != 0) ocsp.busy = 0;
}

void tusk_server_ocsp_refresher_start(uv_loop_t *loop, struct tusk_tls_ctx_s *tls, double secs) {
  if (!tls || secs <= 0) return;
  ocsp.tls = tls;
  uv_timer_init(loop, &ocsp.timer);
  uv_unref((uv_handle_t *)&ocsp.timer);
  uint64_t ms = (uint64_t)(secs * 1000);
  uv_timer_start(&ocsp.timer, ocsp_tick, ms, ms);
}
