/* TLS handshakes per second against one server (bench/h2.sh).
 *
 *   cc -O2 -o tls_handshakes bench/tls_handshakes.c -lssl -lcrypto -pthread
 *   tls_handshakes [-t THREADS] [-d SECONDS] [-r] [-a ALPN,...] [-n SNI] HOST PORT
 *
 * Each thread loops until the deadline: TCP connect, TLS handshake (SNI,
 * ALPN "h2,http/1.1" as a browser offers), close_notify, then read until
 * the server closes. Reading to the end makes each connection cost the
 * server everything it does for a visitor that leaves at once (its
 * handshake, session tickets, HTTP/2 SETTINGS, close), lets the client
 * receive the tickets, and leaves TIME_WAIT with the server rather than
 * exhausting our ephemeral ports. No HTTP request is sent.
 *
 * -r resumes like a browser: each connection offers the newest session
 * ticket this thread has not used yet, and uses every ticket once (RFC
 * 8446 C.4; a TLS 1.3 server usually sends two after a full handshake and
 * one after each resumption). With no unused ticket left (the first
 * connection, or a server that issues none on resumption) the handshake
 * is full. Without -r every handshake is full. The certificate is not
 * verified (the benchmark's is self-signed), but a TLS 1.3 client checks
 * the CertificateVerify signature regardless.
 *
 * Before the measured loop, one probe connection prints what was
 * negotiated to stderr: "tls TLSv1.3 TLS_AES_256_GCM_SHA384 X25519 alpn=h2".
 * At the end, one line on stdout:
 *   handshakes=N seconds=S rate=R resumed=N failed=N tickets=N p50_ms=X p99_ms=X
 * where the latency is from socket() to the end of the client's side of
 * the handshake (what a browser waits before it can send a request).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TICKETS_KEPT 4

typedef struct {
  pthread_t tid;
  SSL_SESSION *tickets_unused[TICKETS_KEPT]; /* with -r; newest last */
  int nunused;
  unsigned long done, resumed, failed, tickets;
  uint32_t *lat_us;
  size_t nlat, caplat;
} worker_t;

static SSL_CTX *ctx;
static struct sockaddr_storage addr;
static socklen_t addrlen;
static int resume;
static const char *sni = "localhost";
static double deadline;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int new_session_cb(SSL *ssl, SSL_SESSION *s) {
  worker_t *w = SSL_get_app_data(ssl);
  if (w == NULL) return 0;
  w->tickets++;
  if (!resume) return 0;
  if (w->nunused == TICKETS_KEPT) { /* drop the oldest */
    SSL_SESSION_free(w->tickets_unused[0]);
    memmove(w->tickets_unused, w->tickets_unused + 1, (TICKETS_KEPT - 1) * sizeof *w->tickets_unused);
    w->nunused--;
  }
  w->tickets_unused[w->nunused++] = s;
  return 1; /* we keep the reference */
}

static void drop_tickets(worker_t *w) {
  while (w->nunused > 0) SSL_SESSION_free(w->tickets_unused[--w->nunused]);
}

static void record(worker_t *w, double seconds) {
  if (w->nlat == w->caplat) {
    size_t cap = w->caplat ? w->caplat * 2 : 65536;
    uint32_t *p = realloc(w->lat_us, cap * sizeof *p);
    if (p == NULL) return;
    w->lat_us = p;
    w->caplat = cap;
  }
  w->lat_us[w->nlat++] = (uint32_t)(seconds * 1e6);
}

/* One connection; returns 0 when the handshake completed. With INFO, prints
 * what was negotiated. */
static int one(worker_t *w, int info) {
  double t0 = now();
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int on = 1;
  struct timeval tv = {5, 0};
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&addr, addrlen) != 0) {
    if (info) fprintf(stderr, "tls_handshakes: connect: %s\n", strerror(errno));
    close(fd);
    return -1;
  }
  SSL *ssl = SSL_new(ctx);
  if (ssl == NULL) {
    close(fd);
    return -1;
  }
  SSL_set_app_data(ssl, w);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, sni);
  if (resume && w->nunused > 0) { /* each ticket once */
    SSL_SESSION *t = w->tickets_unused[--w->nunused];
    SSL_set_session(ssl, t);
    SSL_SESSION_free(t);
  }

  int ok = SSL_connect(ssl) == 1;
  if (ok) {
    record(w, now() - t0);
    if (SSL_session_reused(ssl)) w->resumed++;
    if (info) {
      const unsigned char *alpn = NULL;
      unsigned alpn_len = 0;
      int nid = SSL_get_negotiated_group(ssl);
      SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
      fprintf(stderr, "tls %s %s %s alpn=%.*s\n", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
              nid > 0 ? OBJ_nid2sn(nid) : "?", (int)alpn_len, alpn ? (const char *)alpn : "");
    }
    SSL_shutdown(ssl);
    char buf[16384];
    while (SSL_read(ssl, buf, sizeof buf) > 0) {
    }
  } else if (info) {
    fprintf(stderr, "tls_handshakes: handshake failed: ");
    ERR_print_errors_fp(stderr);
    fputc('\n', stderr);
  }
  SSL_free(ssl);
  close(fd);
  ERR_clear_error(); /* an EOF without close_notify queues an error */
  return ok ? 0 : -1;
}

static void *run(void *arg) {
  worker_t *w = arg;
  while (now() < deadline) {
    if (one(w, 0) == 0) w->done++;
    else w->failed++;
  }
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static void usage(void) {
  fprintf(stderr, "usage: tls_handshakes [-t THREADS] [-d SECONDS] [-r] [-a ALPN,...] [-n SNI] HOST PORT\n");
  exit(2);
}

int main(int argc, char **argv) {
  int threads = 8, opt;
  double seconds = 10;
  const char *alpn = "h2,http/1.1";
  while ((opt = getopt(argc, argv, "t:d:ra:n:")) != -1) {
    switch (opt) {
      case 't': threads = atoi(optarg); break;
      case 'd': seconds = atof(optarg); break;
      case 'r': resume = 1; break;
      case 'a': alpn = optarg; break;
      case 'n': sni = optarg; break;
      default: usage();
    }
  }
  if (argc - optind != 2 || threads < 1 || threads > 1024 || seconds <= 0) usage();

  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int rc = getaddrinfo(argv[optind], argv[optind + 1], &hints, &ai);
  if (rc != 0) {
    fprintf(stderr, "tls_handshakes: %s: %s\n", argv[optind], gai_strerror(rc));
    return 1;
  }
  memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
  addrlen = ai->ai_addrlen;
  freeaddrinfo(ai);
  signal(SIGPIPE, SIG_IGN);

  /* ALPN wire format: length-prefixed names. */
  unsigned char wire[256];
  size_t wl = 0;
  for (const char *p = alpn; *p;) {
    size_t l = strcspn(p, ",");
    if (l == 0 || l > 255 || wl + 1 + l > sizeof wire) usage();
    wire[wl++] = (unsigned char)l;
    memcpy(wire + wl, p, l);
    wl += l;
    p += l + (p[l] == ',');
  }

  ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
      SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)wl) != 0) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, new_session_cb);

  worker_t probe = {0};
  if (one(&probe, 1) != 0) {
    fprintf(stderr, "tls_handshakes: no TLS handshake with %s:%s\n", argv[optind], argv[optind + 1]);
    return 1;
  }
  drop_tickets(&probe);
  free(probe.lat_us);

  worker_t *w = calloc((size_t)threads, sizeof *w);
  if (w == NULL) return 1;
  double t0 = now();
  deadline = t0 + seconds;
  for (int i = 0; i < threads; i++) {
    if (pthread_create(&w[i].tid, NULL, run, &w[i]) != 0) {
      fprintf(stderr, "tls_handshakes: pthread_create failed\n");
      return 1;
    }
  }
  unsigned long done = 0, resumed = 0, failed = 0, tickets = 0;
  size_t nlat = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(w[i].tid, NULL);
    done += w[i].done;
    resumed += w[i].resumed;
    failed += w[i].failed;
    tickets += w[i].tickets;
    nlat += w[i].nlat;
  }
  double elapsed = now() - t0;

  uint32_t *all = malloc((nlat ? nlat : 1) * sizeof *all);
  if (all == NULL) return 1;
  size_t k = 0;
  for (int i = 0; i < threads; i++) {
    memcpy(all + k, w[i].lat_us, w[i].nlat * sizeof *all);
    k += w[i].nlat;
    free(w[i].lat_us);
    drop_tickets(&w[i]);
  }
  qsort(all, nlat, sizeof *all, cmp_u32);
  double p50 = nlat ? all[nlat / 2] / 1e3 : 0, p99 = nlat ? all[(nlat * 99) / 100] / 1e3 : 0;
  printf("handshakes=%lu seconds=%.3f rate=%.1f resumed=%lu failed=%lu tickets=%lu p50_ms=%.3f p99_ms=%.3f\n", done,
         elapsed, elapsed > 0 ? (double)done / elapsed : 0, resumed, failed, tickets, p50, p99);
  free(all);
  free(w);
  SSL_CTX_free(ctx);
  return 0;
}
