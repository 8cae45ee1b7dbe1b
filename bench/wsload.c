/* wsload: a WebSocket load generator for bench/ws.sh.
 *
 * One process, one libuv loop, up to tens of thousands of client
 * connections. Phases, in this order, each optional after the first:
 *
 *   connect    open -n connections (at most --inflight handshakes at a
 *              time), spread over --sources source addresses 127.0.0.2,
 *              127.0.0.3, ... (--first-source; loopback has ~28k
 *              ephemeral ports per source address); then hold them idle
 *              --hold seconds
 *   broadcast  --rounds R: the first client sends "broadcast b SEQ T pad"
 *              and the server is expected to send "b SEQ T pad" to every
 *              connection (the sender too); the latency of each delivery
 *              is its arrival time minus the send time (same clock, same
 *              process). A round ends when every open connection has it
 *              (or after --round-timeout), the next starts --gap ms later
 *   echo       --echo-conns E: the first E connections each send a
 *              message of --echo-size bytes and wait for it to come back,
 *              in a closed loop, --echo-warmup seconds unmeasured, then
 *              --echo-secs measured
 *
 * With --pause, the tool prints "paused connected" after the connect phase
 * and "paused broadcast" after the broadcast phase and waits for SIGUSR1
 * (at most --pause-max seconds) before going on, so that the caller can
 * measure the server with the connections open. --cpu-pids P,P,... sums
 * the CPU time (utime + stime) of those processes over each measured phase.
 *
 * Results are one line per phase of key=value pairs on stdout:
 *   connected n=... failed=... secs=... sources=...
 *   broadcast n=... rounds=... deliveries=... missing=... late=... p50_ms=...
 *   echo conns=... secs=... msgs=... msgs_per_s=... rtt_p50_ms=...
 *   done dropped=... protocol_errors=... unexpected=...
 * Progress and errors go to stderr.
 *
 * The client side is deliberately minimal and independent of Tusk's own
 * engine: it offers no extension (no compression), masks its frames,
 * answers pings, takes a fragmented message's first frame as the message
 * (the servers measured send single frames) and does not check the
 * Sec-WebSocket-Accept value, only the 101 status.
 *
 * Build: cc -O2 -o wsload bench/wsload.c $(pkg-config --cflags --libs libuv) */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_PAYLOAD 65000
#define MAX_HEAD 8192
#define MAX_CPU_PIDS 64

enum { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DEAD };

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t req;
  uint32_t idx;
  uint8_t state;
  uint8_t echo_busy;
  uint32_t last_seq; /* last broadcast round received */
  uint64_t echo_t0;  /* when the pending echo was sent */
  uint8_t *part;     /* unparsed input (a partial frame or head) */
  uint32_t plen, pcap;
} client_t;

typedef struct {
  uint32_t *v;
  size_t n, cap;
} samples_t;

static struct {
  /* options */
  const char *host;
  int port;
  const char *path;
  int n, sources, src_first, inflight_max;
  double hold, connect_timeout;
  int pause;
  double pause_max;
  int rounds, bcast_size, gap_ms;
  double round_timeout;
  int echo_conns, echo_size;
  double echo_secs, echo_warmup;
  int cpu_pids[MAX_CPU_PIDS], ncpu_pids;

  uv_loop_t *loop;
  struct sockaddr_in dst;
  client_t *c;
  char head[1024];
  size_t head_len;

  /* connect */
  int next, inflight, n_open, n_failed, n_dropped, n_proto;
  uint64_t t_connect0, t_last_progress;
  int connect_done;
  uv_timer_t timer, watchdog;
  uv_signal_t sig;
  void (*after_pause)(void);

  /* broadcast */
  client_t *ctl;
  uint32_t seq;
  uint64_t t_send;
  int recv_count;
  samples_t lat;  /* every delivery, µs */
  samples_t last; /* per round: the slowest delivery, µs */
  uint64_t missing, late, unexpected;
  double bcast_cpu0;
  uint64_t bcast_t0;

  /* echo */
  int echo_state; /* 0 off, 1 warmup, 2 measuring, 3 draining */
  uint64_t echo_msgs, echo_t0, echo_t1, echo_bad;
  samples_t rtt;
  double echo_cpu0;
  struct rusage ru0;
} G;

static uint8_t rbuf[64 * 1024];
static uint8_t pad[MAX_PAYLOAD];

static void die(const char *fmt, const char *arg) {
  fprintf(stderr, "wsload: error: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  exit(2);
}

static void samples_add(samples_t *s, uint64_t us) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 4096;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (!s->v) die("%s", "out of memory");
  }
  s->v[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile in ms of sorted samples. */
static double pct_ms(const samples_t *s, double q) {
  if (!s->n) return 0;
  size_t k = (size_t)(q * (double)s->n + 0.999999);
  if (k < 1) k = 1;
  if (k > s->n) k = s->n;
  return s->v[k - 1] / 1000.0;
}

/* Sum of utime+stime of --cpu-pids, in seconds. */
static double server_cpu(void) {
  static long tck;
  if (!tck) tck = sysconf(_SC_CLK_TCK);
  double sum = 0;
  for (int i = 0; i < G.ncpu_pids; i++) {
    char p[64], line[1024];
    snprintf(p, sizeof p, "/proc/%d/stat", G.cpu_pids[i]);
    FILE *f = fopen(p, "r");
    if (!f) continue;
    size_t got = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[got] = 0;
    char *r = strrchr(line, ')');
    if (!r) continue;
    unsigned long ut = 0, st = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(r + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
      sum += (double)(ut + st) / (double)tck;
  }
  return sum;
}

static double self_cpu_since(const struct rusage *r0) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (double)(r.ru_utime.tv_sec - r0->ru_utime.tv_sec) + (r.ru_utime.tv_usec - r0->ru_utime.tv_usec) / 1e6 +
         (double)(r.ru_stime.tv_sec - r0->ru_stime.tv_sec) + (r.ru_stime.tv_usec - r0->ru_stime.tv_usec) / 1e6;
}

/* ---- writing ------------------------------------------------------------- */

static void client_kill(client_t *c, int dropped);

static void on_written(uv_write_t *w, int status) { free(w); }

static void client_write(client_t *c, const void *data, size_t len) {
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == (int)len) return;
  if (n < 0 && n != UV_EAGAIN) {
    client_kill(c, 1);
    return;
  }
  if (n < 0) n = 0;
  uv_write_t *w = malloc(sizeof *w + len - (size_t)n);
  if (!w) die("%s", "out of memory");
  memcpy(w + 1, (const char *)data + n, len - (size_t)n);
  b = uv_buf_init((char *)(w + 1), (unsigned)(len - (size_t)n));
  if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    free(w);
    client_kill(c, 1);
  }
}

/* A masked frame (clients must mask). */
static void send_frame(client_t *c, int opcode, const void *payload, size_t len) {
  static uint8_t out[MAX_PAYLOAD + 16];
  static uint32_t rnd = 0x9e3779b9u;
  size_t h;
  out[0] = (uint8_t)(0x80 | opcode);
  if (len < 126) {
    out[1] = (uint8_t)(0x80 | len);
    h = 2;
  } else {
    out[1] = 0x80 | 126;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    h = 4;
  }
  rnd ^= rnd << 13;
  rnd ^= rnd >> 17;
  rnd ^= rnd << 5;
  uint8_t m[4] = {(uint8_t)rnd, (uint8_t)(rnd >> 8), (uint8_t)(rnd >> 16), (uint8_t)(rnd >> 24)};
  memcpy(out + h, m, 4);
  h += 4;
  const uint8_t *p = payload;
  for (size_t i = 0; i < len; i++) out[h + i] = p[i] ^ m[i & 3];
  client_write(c, out, h + len);
}

/* ---- phases -------------------------------------------------------------- */

static void start_broadcast(void);
static void start_echo(void);
static void finish(void);
static void connect_next(void);
static void round_start(void);
static void round_done(void);

static void on_pause_signal(uv_signal_t *s, int sig) {
  uv_signal_stop(&G.sig);
  uv_timer_stop(&G.timer);
  G.after_pause();
}

static void on_pause_timeout(uv_timer_t *t) {
  fprintf(stderr, "wsload: no SIGUSR1 within %.0f s, going on\n", G.pause_max);
  on_pause_signal(&G.sig, SIGUSR1);
}

/* Print "paused NAME" and wait for SIGUSR1 when --pause is set. */
static void maybe_pause(const char *name, void (*next)(void)) {
  G.after_pause = next;
  if (!G.pause) {
    next();
    return;
  }
  printf("paused %s\n", name);
  fflush(stdout);
  uv_signal_start(&G.sig, on_pause_signal, SIGUSR1);
  uv_timer_start(&G.timer, on_pause_timeout, (uint64_t)(G.pause_max * 1000), 0);
}

static void after_hold(uv_timer_t *t) { maybe_pause("connected", start_broadcast); }

static void connect_phase_done(void) {
  if (G.connect_done) return;
  G.connect_done = 1;
  uv_timer_stop(&G.watchdog);
  printf("connected n=%d failed=%d secs=%.3f sources=%d\n", G.n_open, G.n_failed,
         (double)(uv_hrtime() - G.t_connect0) / 1e9, G.sources);
  fflush(stdout);
  if (G.n_open == 0) {
    fprintf(stderr, "wsload: no connection could be opened\n");
    exit(1);
  }
  if (G.hold > 0) {
    fprintf(stderr, "wsload: holding %d idle connections for %.1f s\n", G.n_open, G.hold);
    uv_timer_start(&G.timer, after_hold, (uint64_t)(G.hold * 1000), 0);
    return;
  }
  maybe_pause("connected", start_broadcast);
}

static void on_connect_watchdog(uv_timer_t *t) {
  double idle = (double)(uv_hrtime() - G.t_last_progress) / 1e9;
  if (idle < G.connect_timeout) return;
  fprintf(stderr, "wsload: no connect progress for %.0f s: %d open, %d in flight given up\n", idle, G.n_open,
          G.inflight);
  for (int i = 0; i < G.n; i++) {
    if (G.c[i].state == C_CONNECTING || G.c[i].state == C_HANDSHAKE) {
      G.n_failed++;
      client_kill(&G.c[i], 0);
    }
  }
  G.inflight = 0;
  G.next = G.n;
  connect_phase_done();
}

static void handshake_finished(client_t *c, int ok) {
  G.inflight--;
  G.t_last_progress = uv_hrtime();
  if (ok) {
    c->state = C_OPEN;
    G.n_open++;
  } else {
    G.n_failed++;
    client_kill(c, 0);
  }
  if ((G.n_open + G.n_failed) % 5000 == 0) fprintf(stderr, "wsload: %d open, %d failed\n", G.n_open, G.n_failed);
  connect_next();
}

static void on_message(client_t *c, const uint8_t *p, size_t len, uint64_t now) {
  if (len >= 2 && p[0] == 'b' && p[1] == ' ') {
    uint32_t seq = (uint32_t)strtoul((const char *)p + 2, NULL, 10);
    if (seq != G.seq || c->last_seq >= seq || !G.t_send) {
      G.late++;
      return;
    }
    c->last_seq = seq;
    uint64_t us = (now - G.t_send) / 1000;
    samples_add(&G.lat, us);
    if (++G.recv_count >= G.n_open) round_done();
    return;
  }
  if (c->echo_busy) {
    c->echo_busy = 0;
    if (len != (size_t)G.echo_size || memcmp(p, pad, len) != 0) G.echo_bad++;
    if (G.echo_state == 2) {
      G.echo_msgs++;
      samples_add(&G.rtt, (now - c->echo_t0) / 1000);
    }
    if (G.echo_state == 1 || G.echo_state == 2) {
      c->echo_busy = 1;
      c->echo_t0 = uv_hrtime();
      send_frame(c, 1, pad, (size_t)G.echo_size);
    }
    return;
  }
  G.unexpected++;
}

/* Parses the frames in p[0..len); returns the bytes used. */
static size_t parse_frames(client_t *c, const uint8_t *p, size_t len, uint64_t now) {
  size_t off = 0;
  while (c->state == C_OPEN && len - off >= 2) {
    uint8_t b0 = p[off], b1 = p[off + 1];
    size_t h = 2;
    uint64_t pl = b1 & 0x7f;
    if (b1 & 0x80) { /* servers never mask */
      G.n_proto++;
      client_kill(c, 1);
      return len;
    }
    if (pl == 126) {
      if (len - off < 4) break;
      pl = (uint64_t)p[off + 2] << 8 | p[off + 3];
      h = 4;
    } else if (pl == 127) {
      if (len - off < 10) break;
      pl = 0;
      for (int i = 0; i < 8; i++) pl = pl << 8 | p[off + 2 + i];
      h = 10;
    }
    if (pl > (16u << 20)) {
      G.n_proto++;
      client_kill(c, 1);
      return len;
    }
    if (len - off < h + pl) break;
    const uint8_t *d = p + off + h;
    int op = b0 & 0x0f;
    off += h + (size_t)pl;
    switch (op) {
      case 0x1:
      case 0x2:
        on_message(c, d, (size_t)pl, now);
        break;
      case 0x0: /* continuation: the message was taken at its first frame */
        break;
      case 0x8:
        client_kill(c, 1);
        return len;
      case 0x9:
        send_frame(c, 0xa, d, (size_t)pl);
        break;
      case 0xa:
        break;
      default:
        G.n_proto++;
        client_kill(c, 1);
        return len;
    }
  }
  return off;
}

static int part_append(client_t *c, const uint8_t *d, size_t n) {
  if (c->plen + n > c->pcap) {
    size_t cap = c->pcap ? c->pcap : 256;
    while (cap < c->plen + n) cap *= 2;
    uint8_t *np = realloc(c->part, cap);
    if (!np) return -1;
    c->part = np;
    c->pcap = (uint32_t)cap;
  }
  memcpy(c->part + c->plen, d, n);
  c->plen += (uint32_t)n;
  return 0;
}

static void part_consume(client_t *c, size_t n) {
  memmove(c->part, c->part + n, c->plen - n);
  c->plen -= (uint32_t)n;
  if (c->plen == 0) {
    free(c->part);
    c->part = NULL;
    c->pcap = 0;
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) { *b = uv_buf_init((char *)rbuf, sizeof rbuf); }

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  client_t *c = s->data;
  if (nread == 0) return;
  if (nread < 0) {
    if (c->state == C_HANDSHAKE)
      handshake_finished(c, 0);
    else
      client_kill(c, 1);
    return;
  }
  uint64_t now = uv_hrtime();
  const uint8_t *d = (const uint8_t *)b->base;
  size_t n = (size_t)nread;
  if (c->state == C_HANDSHAKE) {
    if (part_append(c, d, n) != 0) die("%s", "out of memory");
    void *end = memmem(c->part, c->plen, "\r\n\r\n", 4);
    if (!end) {
      if (c->plen > MAX_HEAD) {
        fprintf(stderr, "wsload: handshake response head over %d bytes\n", MAX_HEAD);
        handshake_finished(c, 0);
      }
      return;
    }
    if (c->plen < 12 || memcmp(c->part, "HTTP/1.1 101", 12) != 0) {
      if (G.n_failed < 5) {
        int l = (int)((uint8_t *)end - c->part);
        fprintf(stderr, "wsload: handshake refused: %.*s\n", l > 200 ? 200 : l, (char *)c->part);
      }
      handshake_finished(c, 0);
      return;
    }
    part_consume(c, (size_t)((uint8_t *)end + 4 - c->part));
    handshake_finished(c, 1);
    if (c->state != C_OPEN || c->plen == 0) return;
    size_t used = parse_frames(c, c->part, c->plen, now);
    if (c->state == C_OPEN) part_consume(c, used);
    return;
  }
  if (c->state != C_OPEN) return;
  if (c->plen == 0) {
    size_t used = parse_frames(c, d, n, now);
    if (c->state == C_OPEN && used < n && part_append(c, d + used, n - used) != 0) die("%s", "out of memory");
    return;
  }
  if (part_append(c, d, n) != 0) die("%s", "out of memory");
  size_t used = parse_frames(c, c->part, c->plen, now);
  if (c->state == C_OPEN) part_consume(c, used);
}

static void on_connected(uv_connect_t *r, int status) {
  client_t *c = r->data;
  if (status < 0) {
    if (G.n_failed < 5) fprintf(stderr, "wsload: connect: %s\n", uv_strerror(status));
    handshake_finished(c, 0);
    return;
  }
  c->state = C_HANDSHAKE;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  client_write(c, G.head, G.head_len);
}

static void start_connect(client_t *c) {
  G.inflight++;
  c->state = C_CONNECTING;
  c->tcp.data = c;
  c->req.data = c;
  int rc = uv_tcp_init_ex(G.loop, &c->tcp, AF_INET);
  if (rc != 0) {
    if (rc == UV_EMFILE || rc == UV_ENFILE) die("%s", "out of file descriptors (raise ulimit -n)");
    c->state = C_DEAD;
    G.inflight--;
    G.n_failed++;
    return;
  }
  uv_os_fd_t fd;
  uv_fileno((uv_handle_t *)&c->tcp, &fd);
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  struct sockaddr_in src;
  memset(&src, 0, sizeof src);
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(0x7f000000u + (uint32_t)G.src_first + (uint32_t)(c->idx % (uint32_t)G.sources));
  rc = uv_tcp_bind(&c->tcp, (struct sockaddr *)&src, 0);
  if (rc == 0) rc = uv_tcp_nodelay(&c->tcp, 1);
  if (rc == 0) rc = uv_tcp_connect(&c->req, &c->tcp, (struct sockaddr *)&G.dst, on_connected);
  if (rc != 0) {
    /* Counted here, not through handshake_finished: no recursion into connect_next. */
    if (G.n_failed < 5) fprintf(stderr, "wsload: connect: %s\n", uv_strerror(rc));
    G.inflight--;
    G.n_failed++;
    client_kill(c, 0);
  }
}

static void connect_next(void) {
  while (G.inflight < G.inflight_max && G.next < G.n) {
    client_t *c = &G.c[G.next++];
    start_connect(c);
  }
  if (G.next >= G.n && G.inflight == 0) connect_phase_done();
}

static void on_closed(uv_handle_t *h) {}

static void client_kill(client_t *c, int dropped) {
  if (c->state == C_DEAD || c->state == C_IDLE) return;
  int was_open = c->state == C_OPEN;
  c->state = C_DEAD;
  free(c->part);
  c->part = NULL;
  c->plen = c->pcap = 0;
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_closed);
  if (was_open) {
    G.n_open--;
    if (dropped) G.n_dropped++;
    if (c->echo_busy) c->echo_busy = 0;
    /* A round waits for every open connection. */
    if (G.t_send && G.recv_count >= G.n_open && G.seq) round_done();
  }
}

/* ---- broadcast ----------------------------------------------------------- */

static void on_round_timeout(uv_timer_t *t) {
  fprintf(stderr, "wsload: round %u: %d of %d connections got it within %.1f s\n", G.seq, G.recv_count, G.n_open,
          G.round_timeout);
  round_done();
}

static void on_gap_done(uv_timer_t *t) { round_start(); }

static void round_start(void) {
  if (!G.ctl || G.ctl->state != C_OPEN) {
    G.ctl = NULL;
    for (int i = 0; i < G.n; i++) {
      if (G.c[i].state == C_OPEN) {
        G.ctl = &G.c[i];
        break;
      }
    }
    if (!G.ctl) die("%s", "no open connection left for the broadcast");
  }
  G.seq++;
  G.recv_count = 0;
  G.t_send = uv_hrtime();
  char msg[MAX_PAYLOAD + 16];
  int l = snprintf(msg, sizeof msg, "broadcast b %u %llu ", G.seq, (unsigned long long)G.t_send);
  int want = 10 + G.bcast_size; /* "broadcast " + the payload */
  while (l < want) msg[l++] = 'x';
  uv_timer_start(&G.timer, on_round_timeout, (uint64_t)(G.round_timeout * 1000), 0);
  send_frame(G.ctl, 1, msg, (size_t)l);
}

static void round_done(void) {
  if (!G.t_send) return;
  uv_timer_stop(&G.timer);
  uint64_t slowest = 0;
  size_t first = G.lat.n - (size_t)G.recv_count;
  for (size_t i = first; i < G.lat.n; i++)
    if (G.lat.v[i] > slowest) slowest = G.lat.v[i];
  if (G.recv_count < G.n_open) G.missing += (uint64_t)(G.n_open - G.recv_count);
  samples_add(&G.last, slowest);
  G.t_send = 0;
  if (G.seq < (uint32_t)G.rounds) {
    uv_timer_start(&G.timer, on_gap_done, (uint64_t)G.gap_ms, 0);
    return;
  }
  double secs = (double)(uv_hrtime() - G.bcast_t0) / 1e9;
  double cpu = server_cpu() - G.bcast_cpu0;
  uint64_t deliveries = G.lat.n;
  qsort(G.lat.v, G.lat.n, sizeof *G.lat.v, cmp_u32);
  qsort(G.last.v, G.last.n, sizeof *G.last.v, cmp_u32);
  printf(
      "broadcast n=%d rounds=%u size=%d deliveries=%llu missing=%llu late=%llu p50_ms=%.3f p90_ms=%.3f "
      "p99_ms=%.3f max_ms=%.3f last_p50_ms=%.3f last_max_ms=%.3f secs=%.3f server_cpu_s=%.3f "
      "server_cpu_us_per_delivery=%.3f\n",
      G.n_open, G.seq, G.bcast_size, (unsigned long long)deliveries, (unsigned long long)G.missing,
      (unsigned long long)G.late, pct_ms(&G.lat, 0.5), pct_ms(&G.lat, 0.9), pct_ms(&G.lat, 0.99), pct_ms(&G.lat, 1.0),
      pct_ms(&G.last, 0.5), pct_ms(&G.last, 1.0), secs, cpu, deliveries ? cpu * 1e6 / (double)deliveries : 0.0);
  fflush(stdout);
  maybe_pause("broadcast", start_echo);
}

static void start_broadcast(void) {
  if (G.rounds <= 0) {
    start_echo();
    return;
  }
  fprintf(stderr, "wsload: %d broadcast rounds to %d connections\n", G.rounds, G.n_open);
  G.bcast_t0 = uv_hrtime();
  G.bcast_cpu0 = server_cpu();
  round_start();
}

/* ---- echo ---------------------------------------------------------------- */

static void on_echo_timer(uv_timer_t *t) {
  if (G.echo_state == 1) {
    G.echo_state = 2;
    G.echo_msgs = 0;
    G.rtt.n = 0;
    G.echo_t0 = uv_hrtime();
    G.echo_cpu0 = server_cpu();
    getrusage(RUSAGE_SELF, &G.ru0);
    uv_timer_start(&G.timer, on_echo_timer, (uint64_t)(G.echo_secs * 1000), 0);
    return;
  }
  if (G.echo_state == 2) {
    G.echo_t1 = uv_hrtime();
    double cpu = server_cpu() - G.echo_cpu0;
    double self = self_cpu_since(&G.ru0);
    double secs = (double)(G.echo_t1 - G.echo_t0) / 1e9;
    G.echo_state = 3;
    int active = 0;
    for (int i = 0; i < G.n; i++) active += G.c[i].echo_busy;
    qsort(G.rtt.v, G.rtt.n, sizeof *G.rtt.v, cmp_u32);
    printf(
        "echo conns=%d size=%d secs=%.3f msgs=%llu msgs_per_s=%.1f rtt_p50_ms=%.3f rtt_p99_ms=%.3f "
        "rtt_max_ms=%.3f bad=%llu active_at_end=%d server_cpu_s=%.3f server_cpu_us_per_msg=%.3f "
        "load_cpu_s=%.3f\n",
        G.echo_conns, G.echo_size, secs, (unsigned long long)G.echo_msgs, (double)G.echo_msgs / secs,
        pct_ms(&G.rtt, 0.5), pct_ms(&G.rtt, 0.99), pct_ms(&G.rtt, 1.0), (unsigned long long)G.echo_bad, active, cpu,
        G.echo_msgs ? cpu * 1e6 / (double)G.echo_msgs : 0.0, self);
    fflush(stdout);
    /* Let the last echoes come back, then go on. */
    uv_timer_start(&G.timer, on_echo_timer, 500, 0);
    return;
  }
  G.echo_state = 0;
  finish();
}

static void start_echo(void) {
  if (G.echo_conns <= 0) {
    finish();
    return;
  }
  int k = 0;
  for (int i = 0; i < G.n && k < G.echo_conns; i++) {
    client_t *c = &G.c[i];
    if (c->state != C_OPEN) continue;
    k++;
  }
  if (k < G.echo_conns) fprintf(stderr, "wsload: only %d open connections for --echo-conns %d\n", k, G.echo_conns);
  G.echo_conns = k;
  fprintf(stderr, "wsload: echo on %d connections, %.0f s warmup + %.0f s\n", k, G.echo_warmup, G.echo_secs);
  G.echo_state = 1;
  k = 0;
  for (int i = 0; i < G.n && k < G.echo_conns; i++) {
    client_t *c = &G.c[i];
    if (c->state != C_OPEN) continue;
    k++;
    c->echo_busy = 1;
    c->echo_t0 = uv_hrtime();
    send_frame(c, 1, pad, (size_t)G.echo_size);
  }
  if (G.echo_warmup > 0) {
    uv_timer_start(&G.timer, on_echo_timer, (uint64_t)(G.echo_warmup * 1000), 0);
  } else {
    on_echo_timer(&G.timer);
  }
}

static void finish(void) {
  printf("done open=%d dropped=%d protocol_errors=%d unexpected=%llu\n", G.n_open, G.n_dropped, G.n_proto,
         (unsigned long long)G.unexpected);
  fflush(stdout);
  /* The kernel closes every socket. */
  exit(G.n_dropped || G.n_proto ? 3 : 0);
}

/* ---- main ---------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: wsload -p PORT [-H 127.0.0.1] [-n CONNS] [options]\n"
          "  --path /             request path\n"
          "  --sources K          source addresses 127.0.0.2 .. (default: one per 10000 connections)\n"
          "  --first-source X     the first source address is 127.0.0.X (2)\n"
          "  --inflight K         handshakes at a time (128)\n"
          "  --connect-timeout S  give up when no connection completes for S s (20)\n"
          "  --hold S             hold the connections idle S s after connecting (0)\n"
          "  --pause              print 'paused PHASE' and wait for SIGUSR1 after connect and broadcast\n"
          "  --pause-max S        wait at most S s for SIGUSR1 (600)\n"
          "  --rounds R           broadcast rounds (0)\n"
          "  --bcast-size B       broadcast payload bytes (64)\n"
          "  --gap MS             pause between rounds (200)\n"
          "  --round-timeout S    (10)\n"
          "  --echo-conns E       echo on the first E connections (0 = no echo)\n"
          "  --echo-size B        echo message bytes (64)\n"
          "  --echo-secs S        measured seconds (10)\n"
          "  --echo-warmup S      unmeasured seconds first (2)\n"
          "  --cpu-pids P,P,...   processes whose CPU time is reported per phase\n");
  exit(2);
}

int main(int argc, char **argv) {
  G.host = "127.0.0.1";
  G.path = "/";
  G.n = 1;
  G.src_first = 2;
  G.inflight_max = 128;
  G.connect_timeout = 20;
  G.pause_max = 600;
  G.bcast_size = 64;
  G.gap_ms = 200;
  G.round_timeout = 10;
  G.echo_size = 64;
  G.echo_secs = 10;
  G.echo_warmup = 2;
  enum {
    OPT_PATH = 256,
    OPT_SOURCES,
    OPT_INFLIGHT,
    OPT_CTIMEOUT,
    OPT_HOLD,
    OPT_PAUSE,
    OPT_PAUSEMAX,
    OPT_ROUNDS,
    OPT_BSIZE,
    OPT_GAP,
    OPT_RTIMEOUT,
    OPT_ECONNS,
    OPT_ESIZE,
    OPT_ESECS,
    OPT_EWARM,
    OPT_CPU,
    OPT_FIRSTSRC
  };
  static const struct option opts[] = {{"path", 1, 0, OPT_PATH},
                                       {"sources", 1, 0, OPT_SOURCES},
                                       {"inflight", 1, 0, OPT_INFLIGHT},
                                       {"connect-timeout", 1, 0, OPT_CTIMEOUT},
                                       {"hold", 1, 0, OPT_HOLD},
                                       {"pause", 0, 0, OPT_PAUSE},
                                       {"pause-max", 1, 0, OPT_PAUSEMAX},
                                       {"rounds", 1, 0, OPT_ROUNDS},
                                       {"bcast-size", 1, 0, OPT_BSIZE},
                                       {"gap", 1, 0, OPT_GAP},
                                       {"round-timeout", 1, 0, OPT_RTIMEOUT},
                                       {"echo-conns", 1, 0, OPT_ECONNS},
                                       {"echo-size", 1, 0, OPT_ESIZE},
                                       {"echo-secs", 1, 0, OPT_ESECS},
                                       {"echo-warmup", 1, 0, OPT_EWARM},
                                       {"cpu-pids", 1, 0, OPT_CPU},
                                       {"first-source", 1, 0, OPT_FIRSTSRC},
                                       {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
  int o;
  while ((o = getopt_long(argc, argv, "H:p:n:h", opts, NULL)) != -1) {
    switch (o) {
      case 'H':
        G.host = optarg;
        break;
      case 'p':
        G.port = atoi(optarg);
        break;
      case 'n':
        G.n = atoi(optarg);
        break;
      case OPT_PATH:
        G.path = optarg;
        break;
      case OPT_SOURCES:
        G.sources = atoi(optarg);
        break;
      case OPT_FIRSTSRC:
        G.src_first = atoi(optarg);
        break;
      case OPT_INFLIGHT:
        G.inflight_max = atoi(optarg);
        break;
      case OPT_CTIMEOUT:
        G.connect_timeout = atof(optarg);
        break;
      case OPT_HOLD:
        G.hold = atof(optarg);
        break;
      case OPT_PAUSE:
        G.pause = 1;
        break;
      case OPT_PAUSEMAX:
        G.pause_max = atof(optarg);
        break;
      case OPT_ROUNDS:
        G.rounds = atoi(optarg);
        break;
      case OPT_BSIZE:
        G.bcast_size = atoi(optarg);
        break;
      case OPT_GAP:
        G.gap_ms = atoi(optarg);
        break;
      case OPT_RTIMEOUT:
        G.round_timeout = atof(optarg);
        break;
      case OPT_ECONNS:
        G.echo_conns = atoi(optarg);
        break;
      case OPT_ESIZE:
        G.echo_size = atoi(optarg);
        break;
      case OPT_ESECS:
        G.echo_secs = atof(optarg);
        break;
      case OPT_EWARM:
        G.echo_warmup = atof(optarg);
        break;
      case OPT_CPU:
        for (char *s = optarg, *e; *s && G.ncpu_pids < MAX_CPU_PIDS; s = *e ? e + 1 : e) {
          long v = strtol(s, &e, 10);
          if (e == s) break;
          G.cpu_pids[G.ncpu_pids++] = (int)v;
        }
        break;
      default:
        usage();
    }
  }
  if (G.port <= 0 || G.n <= 0 || G.inflight_max <= 0) usage();
  if (G.bcast_size < 24 || G.bcast_size > MAX_PAYLOAD - 16) die("%s", "--bcast-size must be 24..64984");
  if (G.echo_size < 1 || G.echo_size > MAX_PAYLOAD) die("%s", "--echo-size must be 1..65000");
  /* One address per 10000 connections: with a single source address the
   * kernel's search for a free port in connect() becomes the bottleneck
   * (measured: 19000 connections in 6 s from one address, 1.5 s from two). */
  if (G.sources <= 0) G.sources = (G.n + 9999) / 10000;
  if (G.src_first < 1 || G.src_first + G.sources > 255) die("%s", "source addresses must stay within 127.0.0.1-254");
  for (int i = 0; i < G.echo_size; i++) pad[i] = (uint8_t)('a' + i % 26);

  /* One descriptor per connection, plus the loop's own. */
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)G.n + 32 > rl.rlim_cur) {
    fprintf(stderr, "wsload: error: %d connections need %d file descriptors; RLIMIT_NOFILE is %llu\n", G.n, G.n + 32,
            (unsigned long long)rl.rlim_cur);
    return 2;
  }

  if (uv_ip4_addr(G.host, G.port, &G.dst) != 0) die("bad address %s", G.host);
  int hl = snprintf(G.head, sizeof G.head,
                    "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                    G.path, G.host, G.port);
  if (hl <= 0 || hl >= (int)sizeof G.head) die("%s", "--path too long");
  G.head_len = (size_t)hl;

  G.c = calloc((size_t)G.n, sizeof *G.c);
  if (!G.c) die("%s", "out of memory");
  for (int i = 0; i < G.n; i++) G.c[i].idx = (uint32_t)i;

  G.loop = uv_default_loop();
  uv_timer_init(G.loop, &G.timer);
  uv_signal_init(G.loop, &G.sig);
  uv_timer_init(G.loop, &G.watchdog);
  G.t_connect0 = G.t_last_progress = uv_hrtime();
  uv_timer_start(&G.watchdog, on_connect_watchdog, 1000, 1000);
  fprintf(stderr, "wsload: %d connections to %s:%d%s from %d source address(es)\n", G.n, G.host, G.port, G.path,
          G.sources);
  connect_next();
  uv_run(G.loop, UV_RUN_DEFAULT);
  finish();
  return 0;
}
