/* Unit tests for the TLS engine: an OpenSSL client on memory BIOs talks to
 * a tusk_tls_conn_t, with bytes pumped between them by hand. Certificates
 * are made in a temporary directory; the OCSP case runs `openssl ocsp` as
 * a local responder (skipped without the openssl command). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/buf.h"
#include "core/common.h"
#include "net/tls.h"

#include "check.h"

static char dir[64];

static const char *path(const char *name) {
  static char bufs[16][128];
  static int next;
  char *p = bufs[next++ % 16];
  snprintf(p, 128, "%s/%s", dir, name);
  return p;
}

/* ---- a client and a server conn joined by hand ------------------------- */

typedef struct {
  SSL *cl;
  BIO *crb, *cwb; /* the client's network side: what it reads / wrote */
  tusk_tls_conn_t *sv;
  tusk_buf_t splain; /* plaintext the server received */
  tusk_buf_t cplain; /* plaintext the client received */
  tusk_buf_t sout;   /* ciphertext the server produced, not yet delivered */
  int srv_rc;        /* first non-zero return of a server call */
  size_t step;       /* feed the server this many bytes per call (0: all) */
} pair_t;

static SSL_CTX *client_ctx(int minv, int maxv) {
  SSL_CTX *c = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(c, minv);
  SSL_CTX_set_max_proto_version(c, maxv);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT);
  return c;
}

static void pair_open(pair_t *p, tusk_tls_ctx_t *ctx, SSL_CTX *cctx, const char *sni, const char *alpn,
                      SSL_SESSION *sess) {
  memset(p, 0, sizeof *p);
  p->cl = SSL_new(cctx);
  p->crb = BIO_new(BIO_s_mem());
  p->cwb = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(p->crb, -1);
  SSL_set_bio(p->cl, p->crb, p->cwb);
  SSL_set_connect_state(p->cl);
  if (sni) SSL_set_tlsext_host_name(p->cl, sni);
  if (alpn) SSL_set_alpn_protos(p->cl, (const unsigned char *)alpn, (unsigned)strlen(alpn));
  if (sess) SSL_set_session(p->cl, sess);
  p->sv = tusk_tls_conn_create(ctx);
  tusk_buf_init(&p->splain);
  tusk_buf_init(&p->cplain);
  tusk_buf_init(&p->sout);
}

static void pair_close(pair_t *p) {
  SSL_free(p->cl);
  tusk_tls_conn_destroy(p->sv);
  tusk_buf_dispose(&p->splain);
  tusk_buf_dispose(&p->cplain);
  tusk_buf_dispose(&p->sout);
}

/* Hands whatever the client wrote to the server. */
static int to_server(pair_t *p) {
  size_t n = BIO_ctrl_pending(p->cwb);
  if (n == 0) return 0;
  char *buf = malloc(n);
  BIO_read(p->cwb, buf, (int)n);
  size_t step = p->step ? p->step : n;
  for (size_t off = 0; off < n && p->srv_rc == 0; off += step) {
    int rc = tusk_tls_conn_feed(p->sv, buf + off, TUSK_MIN(step, n - off), &p->splain, &p->sout);
    if (rc != 0) p->srv_rc = rc;
  }
  free(buf);
  return 1;
}

static int to_client(pair_t *p) {
  if (p->sout.len == 0) return 0;
  BIO_write(p->crb, p->sout.data, (int)p->sout.len);
  tusk_buf_reset(&p->sout);
  return 1;
}

static void client_read(pair_t *p) {
  char buf[16384];
  size_t got;
  while (SSL_read_ex(p->cl, buf, sizeof buf, &got) == 1) tusk_buf_append(&p->cplain, buf, got);
}

/* Moves bytes both ways until nothing moves. */
static void pump(pair_t *p) {
  for (int round = 0; round < 10000; round++) {
    if (!SSL_is_init_finished(p->cl))
      SSL_do_handshake(p->cl);
    else
      client_read(p);
    int moved = to_server(p);
    moved |= to_client(p);
    if (!moved) {
      if (SSL_is_init_finished(p->cl)) client_read(p);
      if (BIO_ctrl_pending(p->cwb) == 0 && p->sout.len == 0) return;
    }
  }
}

/* A full handshake; returns 1 if both sides finished. */
static int handshake(pair_t *p, tusk_tls_ctx_t *ctx, SSL_CTX *cctx, const char *sni, const char *alpn,
                     SSL_SESSION *sess) {
  pair_open(p, ctx, cctx, sni, alpn, sess);
  pump(p);
  return p->srv_rc == 0 && SSL_is_init_finished(p->cl) && tusk_tls_conn_ready(p->sv);
}

static int peer_is(pair_t *p, const char *host) {
  X509 *x = SSL_get0_peer_certificate(p->cl);
  return x != NULL && X509_check_host(x, host, 0, 0, NULL) == 1;
}

static tusk_tls_ctx_t *ctx_of(const char *const *certs, const char *const *keys, size_t n, const char *alpn,
                              int ocsp) {
  tusk_tls_conf_t conf = {certs, keys, n, alpn, ocsp};
  char err[256] = "";
  tusk_tls_ctx_t *ctx = tusk_tls_ctx_create(&conf, err, sizeof err);
  if (ctx == NULL) fprintf(stderr, "  ctx: %s\n", err);
  return ctx;
}

/* ---- cases -------------------------------------------------------------- */

static void make_certs(void) {
  char err[256] = "";
  const char *b[] = {"b.example"};
  const char *w[] = {"*.wild.example", "10.1.2.3"};
  CHECK_EQ(tusk_tls_make_self_signed(path("a.crt"), path("a.key"), NULL, 0, err, sizeof err), 0);
  CHECK_EQ(tusk_tls_make_self_signed(path("b.crt"), path("b.key"), b, 1, err, sizeof err), 0);
  CHECK_EQ(tusk_tls_make_self_signed(path("w.crt"), path("w.key"), w, 2, err, sizeof err), 0);
  struct stat st;
  CHECK(stat(path("a.key"), &st) == 0 && (st.st_mode & 0777) == 0600);
  const char *bad[] = {"bad,name"};
  CHECK(tusk_tls_make_self_signed(path("x.crt"), path("x.key"), bad, 1, err, sizeof err) < 0);
  CHECK(strstr(err, "bad,name") != NULL);
  CHECK(tusk_tls_make_self_signed("/nonexistent/dir/c.crt", "/nonexistent/dir/c.key", NULL, 0, err, sizeof err) < 0);
  CHECK(strstr(err, "/nonexistent/dir/c.key") != NULL);

  /* The certificate says what we asked for. */
  FILE *f = fopen(path("w.crt"), "r");
  X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
  if (f) fclose(f);
  CHECK(x != NULL);
  if (x) {
    CHECK(X509_check_host(x, "localhost", 0, 0, NULL) == 1);
    CHECK(X509_check_host(x, "a.wild.example", 0, 0, NULL) == 1);
    CHECK(X509_check_ip_asc(x, "127.0.0.1", 0) == 1);
    CHECK(X509_check_ip_asc(x, "::1", 0) == 1);
    CHECK(X509_check_ip_asc(x, "10.1.2.3", 0) == 1);
    EVP_PKEY *pk = X509_get0_pubkey(x);
    CHECK(pk != NULL && EVP_PKEY_is_a(pk, "EC") && EVP_PKEY_get_bits(pk) == 256);
    long days = 0;
    int pd = 0, ps = 0;
    ASN1_TIME_diff(&pd, &ps, X509_get0_notBefore(x), X509_get0_notAfter(x));
    days = pd;
    CHECK(days >= 365 && days <= 366);
    X509_free(x);
  }
}

static void test_handshakes(void) {
  const char *certs[] = {path("a.crt")}, *keys[] = {path("a.key")};
  tusk_tls_ctx_t *ctx = ctx_of(certs, keys, 1, "h2,http/1.1", 0);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  pair_t p;

  SSL_CTX *c13 = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
  CHECK(handshake(&p, ctx, c13, NULL, NULL, NULL));
  CHECK(tusk_tls_conn_version(p.sv) && strcmp(tusk_tls_conn_version(p.sv), "TLSv1.3") == 0);
  CHECK(tusk_tls_conn_cipher(p.sv) && strncmp(tusk_tls_conn_cipher(p.sv), "TLS_", 4) == 0);
  CHECK(tusk_tls_conn_alpn(p.sv) == NULL);
  CHECK(tusk_tls_conn_sni(p.sv) == NULL);
  CHECK(!tusk_tls_conn_resumed(p.sv));
  CHECK(peer_is(&p, "localhost"));
  pair_close(&p);

  SSL_CTX *c12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  CHECK(handshake(&p, ctx, c12, "localhost", NULL, NULL));
  CHECK(tusk_tls_conn_version(p.sv) && strcmp(tusk_tls_conn_version(p.sv), "TLSv1.2") == 0);
  CHECK(tusk_tls_conn_cipher(p.sv) && strncmp(tusk_tls_conn_cipher(p.sv), "ECDHE-", 6) == 0 &&
        strstr(tusk_tls_conn_cipher(p.sv), "GCM") != NULL);
  CHECK(tusk_tls_conn_sni(p.sv) && strcmp(tusk_tls_conn_sni(p.sv), "localhost") == 0);
  pair_close(&p);

  /* A TLS 1.2 client that offers only CBC / non-ECDHE ciphers is refused. */
  SSL_CTX *weak = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(weak, "AES128-SHA:AES256-SHA256");
  pair_open(&p, ctx, weak, NULL, NULL, NULL);
  pump(&p);
  CHECK_EQ(p.srv_rc, TUSK_ETLS);
  CHECK(!tusk_tls_conn_ready(p.sv));
  pair_close(&p);
  SSL_CTX_free(weak);

  /* ALPN: the server's preference wins; no overlap means no ALPN. */
  static const char h2_h1[] = "\x08http/1.1\x02h2", h1[] = "\x08http/1.1", spdy[] = "\x06spdy/3";
  CHECK(handshake(&p, ctx, c13, NULL, h2_h1, NULL));
  CHECK(tusk_tls_conn_alpn(p.sv) && strcmp(tusk_tls_conn_alpn(p.sv), "h2") == 0);
  pair_close(&p);
  CHECK(handshake(&p, ctx, c12, NULL, h1, NULL));
  CHECK(tusk_tls_conn_alpn(p.sv) && strcmp(tusk_tls_conn_alpn(p.sv), "http/1.1") == 0);
  pair_close(&p);
  CHECK(handshake(&p, ctx, c13, NULL, spdy, NULL));
  CHECK(tusk_tls_conn_alpn(p.sv) == NULL);
  pair_close(&p);
  tusk_tls_ctx_destroy(ctx);

  /* No ALPN list configured: http/1.1 only. */
  ctx = ctx_of(certs, keys, 1, NULL, 0);
  CHECK(handshake(&p, ctx, c13, NULL, h2_h1, NULL));
  CHECK(tusk_tls_conn_alpn(p.sv) && strcmp(tusk_tls_conn_alpn(p.sv), "http/1.1") == 0);
  pair_close(&p);
  tusk_tls_ctx_destroy(ctx);

  /* A TLS 1.1 client is refused. */
  ctx = ctx_of(certs, keys, 1, NULL, 0);
  SSL_CTX *c11 = client_ctx(TLS1_1_VERSION, TLS1_1_VERSION);
  SSL_CTX_set_security_level(c11, 0);
  SSL_CTX_set_cipher_list(c11, "DEFAULT:@SECLEVEL=0");
  pair_open(&p, ctx, c11, NULL, NULL, NULL);
  SSL_do_handshake(p.cl);
  CHECK(BIO_ctrl_pending(p.cwb) > 0); /* the client did offer TLS 1.1 */
  pump(&p);
  CHECK_EQ(p.srv_rc, TUSK_ETLS);
  CHECK(!tusk_tls_conn_ready(p.sv));
  CHECK(strstr(tusk_tls_conn_error(p.sv), "older than 1.2") != NULL);
  if (!strstr(tusk_tls_conn_error(p.sv), "older than 1.2")) fprintf(stderr, "  %s\n", tusk_tls_conn_error(p.sv));
  pair_close(&p);
  SSL_CTX_free(c11);
  tusk_tls_ctx_destroy(ctx);
  SSL_CTX_free(c13);
  SSL_CTX_free(c12);
}

static void test_sni(void) {
  const char *certs[] = {path("a.crt"), path("b.crt"), path("w.crt")};
  const char *keys[] = {path("a.key"), path("b.key"), path("w.key")};
  tusk_tls_ctx_t *ctx = ctx_of(certs, keys, 3, "h2,http/1.1", 0);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  SSL_CTX *cc = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
  pair_t p;
  static const char h2[] = "\x02h2";
  CHECK(handshake(&p, ctx, cc, "b.example", h2, NULL));
  CHECK(peer_is(&p, "b.example"));
  CHECK(tusk_tls_conn_sni(p.sv) && strcmp(tusk_tls_conn_sni(p.sv), "b.example") == 0);
  CHECK(tusk_tls_conn_alpn(p.sv) && strcmp(tusk_tls_conn_alpn(p.sv), "h2") == 0); /* after the switch */
  pair_close(&p);
  CHECK(handshake(&p, ctx, cc, "B.Example", NULL, NULL));
  CHECK(peer_is(&p, "b.example"));
  pair_close(&p);
  CHECK(handshake(&p, ctx, cc, "unknown.example", NULL, NULL));
  CHECK(peer_is(&p, "localhost") && !peer_is(&p, "b.example"));
  pair_close(&p);
  CHECK(handshake(&p, ctx, cc, NULL, NULL, NULL));
  CHECK(peer_is(&p, "localhost") && !peer_is(&p, "b.example"));
  pair_close(&p);
  CHECK(handshake(&p, ctx, cc, "x.wild.example", NULL, NULL));
  CHECK(peer_is(&p, "x.wild.example"));
  pair_close(&p);
  /* A wildcard covers exactly one label. */
  CHECK(handshake(&p, ctx, cc, "a.b.wild.example", NULL, NULL));
  CHECK(peer_is(&p, "localhost") && !peer_is(&p, "x.wild.example"));
  pair_close(&p);
  CHECK(handshake(&p, ctx, cc, "wild.example", NULL, NULL));
  CHECK(!peer_is(&p, "x.wild.example"));
  pair_close(&p);
  /* TLS 1.2 too. */
  SSL_CTX *c12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  CHECK(handshake(&p, ctx, c12, "b.example", NULL, NULL));
  CHECK(peer_is(&p, "b.example"));
  pair_close(&p);
  SSL_CTX_free(c12);
  SSL_CTX_free(cc);
  tusk_tls_ctx_destroy(ctx);
}

static void fill(char *buf, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) buf[i] = (char)((i * 131 + seed + (i >> 9)) & 0xff);
}

static void test_data(void) {
  const char *certs[] = {path("a.crt")}, *keys[] = {path("a.key")};
  tusk_tls_ctx_t *ctx = ctx_of(certs, keys, 1, NULL, 0);
  if (ctx == NULL) return;
  const size_t big = 1 << 20;
  char *a = malloc(big), *b = malloc(big);
  fill(a, big, 7);
  fill(b, big, 99);
  int vers[] = {TLS1_2_VERSION, TLS1_3_VERSION};
  for (int v = 0; v < 2; v++) {
    SSL_CTX *cc = client_ctx(vers[v], vers[v]);
    for (int bytewise = 0; bytewise < 2; bytewise++) {
      pair_t p;
      pair_open(&p, ctx, cc, NULL, NULL, NULL);
      p.step = bytewise ? 1 : 0;
      /* Written before the handshake: held back, then sent. */
      CHECK_EQ(tusk_tls_conn_write(p.sv, "early ", 6, &p.sout), 0);
      CHECK_EQ(p.sout.len, 0);
      pump(&p);
      CHECK(p.srv_rc == 0 && tusk_tls_conn_ready(p.sv));
      CHECK(p.cplain.len == 6 && memcmp(p.cplain.data, "early ", 6) == 0);
      tusk_buf_reset(&p.cplain);

      size_t n = bytewise ? 20000 : big;
      size_t w = 0;
      CHECK(SSL_write_ex(p.cl, a, n, &w) == 1 && w == n);
      pump(&p);
      CHECK(p.srv_rc == 0);
      CHECK(p.splain.len == n && memcmp(p.splain.data, a, n) == 0);

      CHECK_EQ(tusk_tls_conn_write(p.sv, b, n, &p.sout), 0);
      CHECK(p.sout.len > n);
      pump(&p);
      CHECK(p.cplain.len == n && memcmp(p.cplain.data, b, n) == 0);

      /* Both directions at once. */
      tusk_buf_reset(&p.splain);
      tusk_buf_reset(&p.cplain);
      SSL_write_ex(p.cl, "ping", 4, &w);
      tusk_tls_conn_write(p.sv, "pong", 4, &p.sout);
      pump(&p);
      CHECK(p.splain.len == 4 && memcmp(p.splain.data, "ping", 4) == 0);
      CHECK(p.cplain.len == 4 && memcmp(p.cplain.data, "pong", 4) == 0);

      /* close_notify both ways. */
      CHECK_EQ(tusk_tls_conn_shutdown(p.sv, &p.sout), 0);
      CHECK(p.sout.len > 0);
      CHECK(tusk_tls_conn_write(p.sv, "x", 1, &p.sout) == TUSK_ETLS);
      to_client(&p);
      char c;
      size_t got;
      CHECK(SSL_read_ex(p.cl, &c, 1, &got) == 0 && SSL_get_error(p.cl, 0) == SSL_ERROR_ZERO_RETURN);
      CHECK(!tusk_tls_conn_peer_closed(p.sv));
      SSL_shutdown(p.cl);
      to_server(&p);
      CHECK(p.srv_rc == 0 && tusk_tls_conn_peer_closed(p.sv));
      pair_close(&p);
    }
    SSL_CTX_free(cc);
  }
  free(a);
  free(b);
  tusk_tls_ctx_destroy(ctx);
}

static int feed_str(tusk_tls_conn_t *c, const char *s, size_t len, tusk_buf_t *plain, tusk_buf_t *out) {
  return tusk_tls_conn_feed(c, s, len, plain, out);
}

static void test_bad_input(void) {
  const char *certs[] = {path("a.crt")}, *keys[] = {path("a.key")};
  tusk_tls_ctx_t *ctx = ctx_of(certs, keys, 1, NULL, 0);
  if (ctx == NULL) return;
  tusk_buf_t plain, out;
  tusk_buf_init(&plain);
  tusk_buf_init(&out);

  tusk_tls_conn_t *c = tusk_tls_conn_create(ctx);
  static const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  CHECK_EQ(feed_str(c, http, sizeof http - 1, &plain, &out), TUSK_ETLS);
  CHECK(strstr(tusk_tls_conn_error(c), "plain HTTP") != NULL);
  CHECK_EQ(plain.len, 0);
  CHECK_EQ(feed_str(c, "\x16", 1, &plain, &out), TUSK_ETLS); /* stays failed */
  CHECK(tusk_tls_conn_write(c, "x", 1, &out) == TUSK_ETLS);
  tusk_tls_conn_destroy(c);

  /* Just the start of a plain request is enough to tell. */
  c = tusk_tls_conn_create(ctx);
  CHECK_EQ(feed_str(c, "GET / HTTP/1.1\r\n", 16, &plain, &out), TUSK_ETLS);
  tusk_tls_conn_destroy(c);

  tusk_buf_reset(&out);
  c = tusk_tls_conn_create(ctx);
  static const char garbage[] = "\x16\x03\x01\x00\x10" "0123456789abcdef";
  CHECK_EQ(feed_str(c, garbage, sizeof garbage - 1, &plain, &out), TUSK_ETLS);
  CHECK(tusk_tls_conn_error(c)[0] != '\0');
  CHECK(out.len >= 7 && out.data[0] == 0x15); /* a fatal alert record to send */
  tusk_tls_conn_destroy(c);

  c = tusk_tls_conn_create(ctx);
  CHECK_EQ(feed_str(c, "\x00\x01\x02\x03\x04\x05\x06\x07", 8, &plain, &out), TUSK_ETLS);
  tusk_tls_conn_destroy(c);

  /* A truncated ClientHello just waits. */
  SSL_CTX *cc = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
  pair_t p;
  pair_open(&p, ctx, cc, "localhost", NULL, NULL);
  SSL_do_handshake(p.cl);
  size_t n = BIO_ctrl_pending(p.cwb);
  char *hello = malloc(n);
  BIO_read(p.cwb, hello, (int)n);
  CHECK(n > 100);
  CHECK_EQ(tusk_tls_conn_feed(p.sv, hello, n - 10, &p.splain, &p.sout), 0);
  CHECK_EQ(p.sout.len, 0);
  CHECK_EQ(p.splain.len, 0);
  CHECK(!tusk_tls_conn_ready(p.sv));
  CHECK(tusk_tls_conn_version(p.sv) == NULL);
  /* ... and finishes once the rest arrives. */
  CHECK_EQ(tusk_tls_conn_feed(p.sv, hello + n - 10, 10, &p.splain, &p.sout), 0);
  CHECK(p.sout.len > 0);
  pump(&p);
  CHECK(tusk_tls_conn_ready(p.sv));
  free(hello);
  pair_close(&p);
  SSL_CTX_free(cc);

  /* Client-initiated renegotiation (TLS 1.2) ends the connection. */
  SSL_CTX *c12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
  CHECK(handshake(&p, ctx, c12, NULL, NULL, NULL));
  CHECK(SSL_renegotiate(p.cl) == 1);
  SSL_do_handshake(p.cl);
  CHECK(BIO_ctrl_pending(p.cwb) > 0);
  to_server(&p);
  CHECK_EQ(p.srv_rc, TUSK_ETLS);
  CHECK(strstr(tusk_tls_conn_error(p.sv), "renegotiation") != NULL);
  CHECK(p.sout.len > 0); /* the no_renegotiation alert */
  pair_close(&p);
  SSL_CTX_free(c12);

  tusk_buf_dispose(&plain);
  tusk_buf_dispose(&out);
  tusk_tls_ctx_destroy(ctx);
}

static time_t fake_now;
static time_t fake_clock(void) { return fake_now; }

/* A connection to ctx offering (a copy of) sess; returns the client's
 * session afterwards (caller frees) and whether it resumed. */
static SSL_SESSION *connect_with(tusk_tls_ctx_t *ctx, SSL_CTX *cc, SSL_SESSION *sess, int *resumed) {
  pair_t p;
  *resumed = -1;
  /* A copy: OpenSSL's client uses a TLS 1.3 session only once. */
  SSL_SESSION *copy = sess ? SSL_SESSION_dup(sess) : NULL;
  int ok = handshake(&p, ctx, cc, "localhost", NULL, copy);
  SSL_SESSION_free(copy);
  if (!ok) {
    pair_close(&p);
    return NULL;
  }
  /* Both sides agree. */
  *resumed = SSL_session_reused(p.cl) ? 1 : 0;
  if (*resumed != tusk_tls_conn_resumed(p.sv)) *resumed = -2;
  SSL_SESSION *s = SSL_get1_session(p.cl);
  SSL_shutdown(p.cl); /* SSL_free without it marks the session not resumable */
  pair_close(&p);
  return s;
}

static void test_resumption(void) {
  const char *certs[] = {path("a.crt")}, *keys[] = {path("a.key")};
  tusk_tls_ctx_t *one = ctx_of(certs, keys, 1, NULL, 0), *two = ctx_of(certs, keys, 1, NULL, 0);
  tusk_tls_ctx_t *other = ctx_of(certs, keys, 1, NULL, 0);
  if (!one || !two || !other) return;
  static const unsigned char secret[32] = "0123456789abcdef0123456789abcde";
  CHECK_EQ(tusk_tls_ctx_set_ticket_secret(one, secret, sizeof secret, 600), 0);
  CHECK_EQ(tusk_tls_ctx_set_ticket_secret(two, secret, sizeof secret, 600), 0);
  CHECK_EQ(tusk_tls_ctx_set_ticket_secret(other, NULL, 0, 600), 0);
  CHECK_EQ(tusk_tls_ctx_set_ticket_secret(other, secret, 8, 600), TUSK_EPROTO);
  tusk__tls_set_clock(fake_clock);
  int vers[] = {TLS1_2_VERSION, TLS1_3_VERSION};
  for (int v = 0; v < 2; v++) {
    SSL_CTX *cc = client_ctx(vers[v], vers[v]);
    fake_now = 600 * 1000 + 10;
    int r;
    SSL_SESSION *s1 = connect_with(one, cc, NULL, &r);
    CHECK(s1 != NULL && r == 0);
    CHECK(s1 && SSL_SESSION_has_ticket(s1));
    /* Another "process" with the same secret. */
    SSL_SESSION *s2 = connect_with(two, cc, s1, &r);
    CHECK_EQ(r, 1);
    SSL_SESSION_free(s2);
    /* Not with a different secret (a full handshake instead). */
    s2 = connect_with(other, cc, s1, &r);
    CHECK_EQ(r, 0);
    SSL_SESSION_free(s2);
    /* Next epoch: the previous key still works, and renews the ticket. */
    fake_now += 600;
    s2 = connect_with(two, cc, s1, &r);
    CHECK_EQ(r, 1);
    CHECK(s2 != NULL);
    SSL_SESSION *s3 = connect_with(one, cc, s2, &r); /* the renewed one */
    CHECK_EQ(r, 1);
    SSL_SESSION_free(s3);
    /* Two epochs later: too old. */
    fake_now += 600;
    s3 = connect_with(one, cc, s1, &r);
    CHECK_EQ(r, 0);
    SSL_SESSION_free(s3);
    /* The renewed ticket is from the previous epoch now: still good. */
    s3 = connect_with(one, cc, s2, &r);
    CHECK_EQ(r, 1);
    SSL_SESSION_free(s3);
    SSL_SESSION_free(s2);
    SSL_SESSION_free(s1);
    SSL_CTX_free(cc);
  }
  tusk__tls_set_clock(NULL);
  tusk_tls_ctx_destroy(one);
  tusk_tls_ctx_destroy(two);
  tusk_tls_ctx_destroy(other);
}

static int copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  char buf[8192];
  size_t n;
  int ok = a && b;
  while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
  if (a) fclose(a);
  if (b && fclose(b) != 0) ok = 0;
  return ok ? 0 : -1;
}

static void test_reload(void) {
  char err[256] = "";
  const char *one[] = {"one.example"}, *two[] = {"two.example"};
  CHECK_EQ(tusk_tls_make_self_signed(path("r.crt"), path("r.key"), one, 1, err, sizeof err), 0);
  const char *certs[] = {path("r.crt")}, *keys[] = {path("r.key")};
  tusk_tls_ctx_t *ctx = ctx_of(certs, keys, 1, NULL, 0);
  if (ctx == NULL) return;
  SSL_CTX *cc = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
  pair_t old, p;
  CHECK(handshake(&old, ctx, cc, NULL, NULL, NULL));
  CHECK(peer_is(&old, "one.example"));
  SSL_SESSION *sess = SSL_get1_session(old.cl);

  CHECK_EQ(tusk_tls_make_self_signed(path("r.crt"), path("r.key"), two, 1, err, sizeof err), 0);
  CHECK_EQ(tusk_tls_ctx_reload(ctx, err, sizeof err), 0);
  CHECK(handshake(&p, ctx, cc, NULL, NULL, NULL));
  CHECK(peer_is(&p, "two.example") && !peer_is(&p, "one.example"));
  pair_close(&p);
  /* Tickets from before the reload still resume. */
  CHECK(handshake(&p, ctx, cc, NULL, NULL, sess));
  CHECK(tusk_tls_conn_resumed(p.sv));
  pair_close(&p);
  SSL_SESSION_free(sess);

  /* The old connection goes on with its certificates. */
  size_t w;
  SSL_write_ex(old.cl, "still", 5, &w);
  tusk_tls_conn_write(old.sv, "here", 4, &old.sout);
  pump(&old);
  CHECK(old.srv_rc == 0 && old.splain.len == 5 && memcmp(old.splain.data, "still", 5) == 0);
  CHECK(old.cplain.len == 4 && memcmp(old.cplain.data, "here", 4) == 0);

  /* A broken file: the reload fails, naming it, and the last good set stays. */
  CHECK_EQ(copy_file(path("b.key"), path("r.key")), 0);
  err[0] = '\0';
  CHECK(tusk_tls_ctx_reload(ctx, err, sizeof err) < 0);
  CHECK(strstr(err, path("r.key")) != NULL && strstr(err, "does not match") != NULL);
  CHECK(handshake(&p, ctx, cc, NULL, NULL, NULL));
  CHECK(peer_is(&p, "two.example"));
  pair_close(&p);

  /* The ctx may go before its connections. */
  tusk_tls_ctx_destroy(ctx);
  tusk_buf_reset(&old.splain);
  SSL_write_ex(old.cl, "after", 5, &w);
  pump(&old);
  CHECK(old.srv_rc == 0 && old.splain.len == 5);
  pair_close(&old);
  SSL_CTX_free(cc);
}

static void test_conf_errors(void) {
  char err[256];
  tusk_tls_conf_t conf;
  const char *certs[2], *keys[2];
  memset(&conf, 0, sizeof conf);
  conf.certs = certs;
  conf.keys = keys;
  conf.n = 1;

  certs[0] = path("a.crt"), keys[0] = path("b.key");
  err[0] = '\0';
  CHECK(tusk_tls_ctx_create(&conf, err, sizeof err) == NULL);
  CHECK(strstr(err, "does not match") && strstr(err, path("a.crt")) && strstr(err, path("b.key")));

  certs[0] = path("missing.crt"), keys[0] = path("a.key");
  CHECK(tusk_tls_ctx_create(&conf, err, sizeof err) == NULL);
  CHECK(strstr(err, path("missing.crt")) && strstr(err, "No such file"));

  certs[0] = path("a.crt"), keys[0] = path("missing.key");
  CHECK(tusk_tls_ctx_create(&conf, err, sizeof err) == NULL);
  CHECK(strstr(err, path("missing.key")) != NULL);

  /* A key where the certificate should be, and the other way round. */
  certs[0] = path("a.key"), keys[0] = path("a.key");
  CHECK(tusk_tls_ctx_create(&conf, err, sizeof err) == NULL);
  CHECK(strstr(err, "certificate") && strstr(err, path("a.key")));
  certs[0] = path("a.crt"), keys[0] = path("a.crt");
  CHECK(tusk_tls_ctx_create(&conf, err, sizeof err) == NULL);
  CHECK(strstr(err, "private key") && strstr(err, path("a.crt")));

  /* The second pair is checked too. */
  conf.n = 2;
  certs[0] = path("a.crt"), keys[0] = path("a.key");
  certs[1] = path("b.crt"), keys[1] = path("w.key");
  CHECK(tusk_tls_ctx_create(&conf, err, sizeof err) == NULL);
  CHECK(strstr(err, path("w.key")) && strstr(err, path("b.crt")));

  conf.n = 1;
  conf.alpn = "h2,,http/1.1";
  CHECK(tusk_tls_ctx_create(&conf, err, sizeof err) == NULL);
  CHECK(strstr(err, "ALPN") != NULL);
  conf.n = 0;
  CHECK(tusk_tls_ctx_create(&conf, err, sizeof err) == NULL);
  tusk_tls_ctx_destroy(NULL);
  tusk_tls_conn_destroy(NULL);
}

/* ---- OCSP with `openssl ocsp` as the responder --------------------------- */

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &l) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static int run(const char *cmd) {
  int st = system(cmd);
  if (st != 0) fprintf(stderr, "  command failed (%d): %s\n", st, cmd);
  return st == 0 ? 0 : -1;
}

/* A handshake asking (or not) for a staple: -1 failed, 0 no staple, 1 a
 * verified "good" response for the server's certificate, 2 anything else. */
static int ocsp_status(tusk_tls_ctx_t *ctx, SSL_CTX *cc, const char *sni, int ask) {
  pair_t p;
  pair_open(&p, ctx, cc, sni, NULL, NULL);
  if (ask) SSL_set_tlsext_status_type(p.cl, TLSEXT_STATUSTYPE_ocsp);
  pump(&p);
  int rc = -1;
  if (tusk_tls_conn_ready(p.sv) && SSL_is_init_finished(p.cl)) {
    const unsigned char *der = NULL;
    long len = SSL_get_tlsext_status_ocsp_resp(p.cl, &der);
    rc = len > 0 ? 2 : 0;
    OCSP_RESPONSE *rsp = len > 0 ? d2i_OCSP_RESPONSE(NULL, &der, len) : NULL;
    OCSP_BASICRESP *bs = rsp ? OCSP_response_get1_basic(rsp) : NULL;
    X509 *leaf = SSL_get0_peer_certificate(p.cl);
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(p.cl);
    X509 *issuer = sk_X509_num(chain) > 1 ? sk_X509_value(chain, 1) : NULL;
    OCSP_CERTID *id = bs && issuer ? OCSP_cert_to_id(NULL, leaf, issuer) : NULL;
    X509_STORE *store = X509_STORE_new();
    if (issuer) X509_STORE_add_cert(store, issuer);
    int status = -1;
    if (id && OCSP_resp_find_status(bs, id, &status, NULL, NULL, NULL, NULL) == 1 &&
        status == V_OCSP_CERTSTATUS_GOOD && OCSP_basic_verify(bs, chain, store, 0) == 1)
      rc = 1;
    X509_STORE_free(store);
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(rsp);
  }
  pair_close(&p);
  return rc;
}

static void test_ocsp(void) {
  if (system("openssl version >/dev/null 2>&1") != 0) {
    printf("skipping OCSP: no openssl command\n");
    return;
  }
  int port = free_port();
  char cmd[4096];
  /* A CA, a leaf whose AIA points at the responder, and the index. */
  snprintf(cmd, sizeof cmd,
           "cd %s && exec >ocsp.log 2>&1 && "
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt "
           "-subj '/CN=Tusk Test CA' -days 2 -addext basicConstraints=critical,CA:TRUE "
           "-addext keyUsage=critical,keyCertSign,cRLSign && "
           "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr "
           "-subj /CN=ocsp.example && "
           "printf 'subjectAltName=DNS:ocsp.example\\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:%d/\\n' "
           ">leaf.ext && "
           "openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -set_serial 0x1234 -days 2 "
           "-extfile leaf.ext -out leaf.crt && cat leaf.crt ca.crt >chain.crt && "
           "printf 'V\\t%%s\\t\\t1234\\tunknown\\t/CN=ocsp.example\\n' "
           "\"$(date -u -d '+2 days' +%%y%%m%%d%%H%%M%%SZ)\" >index.txt",
           dir, port);
  if (run(cmd) != 0) {
    CHECK(!"could not make the OCSP certificates (see ocsp.log)");
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir) != 0) _exit(127);
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int fd = open("responder.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
    execlp("openssl", "openssl", "ocsp", "-index", "index.txt", "-port", portstr, "-rsigner", "ca.crt", "-rkey",
           "ca.key", "-CA", "ca.crt", "-nmin", "10", (char *)NULL);
    _exit(127);
  }
  /* Wait for it to listen. Not by connecting: an empty connection hangs
   * `openssl ocsp` (3.0) for good. */
  int up = 0;
  for (int i = 0; i < 200 && !up; i++) {
    usleep(25 * 1000);
    FILE *f = fopen(path("responder.log"), "r");
    char line[256];
    while (f && !up && fgets(line, sizeof line, f)) up = strstr(line, "waiting for OCSP client") != NULL;
    if (f) fclose(f);
  }
  CHECK(up);

  const char *certs[] = {path("a.crt"), path("chain.crt")}, *keys[] = {path("a.key"), path("leaf.key")};
  tusk_tls_ctx_t *ctx = ctx_of(certs, keys, 2, NULL, 1);
  CHECK(ctx != NULL);
  if (ctx != NULL) {
    char err[256] = "";
    setenv("no_proxy", "127.0.0.1", 1);
    int n = tusk_tls_ctx_refresh_ocsp(ctx, err, sizeof err);
    CHECK_EQ(n, 1); /* a.crt has no responder URL */
    if (n != 1) fprintf(stderr, "  refresh_ocsp: %d %s\n", n, err);

    SSL_CTX *cc = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
    int vers[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
      SSL_CTX_set_max_proto_version(cc, vers[v]);
      CHECK_EQ(ocsp_status(ctx, cc, "ocsp.example", 1), 1);
      CHECK_EQ(ocsp_status(ctx, cc, "ocsp.example", 0), 0); /* not asked */
      CHECK_EQ(ocsp_status(ctx, cc, "localhost", 1), 0);    /* no responder URL */
    }

    /* Responder gone: refresh fails with a reason, the staple is kept,
     * also across a reload of unchanged files. */
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    pid = -1;
    n = tusk_tls_ctx_refresh_ocsp(ctx, err, sizeof err);
    CHECK(n < 0 && strstr(err, path("chain.crt")) != NULL);
    CHECK_EQ(ocsp_status(ctx, cc, "ocsp.example", 1), 1);
    CHECK_EQ(tusk_tls_ctx_reload(ctx, err, sizeof err), 0);
    CHECK_EQ(ocsp_status(ctx, cc, "ocsp.example", 1), 1);
    SSL_CTX_free(cc);
    tusk_tls_ctx_destroy(ctx);
  }
  if (pid > 0) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
  }
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/tusk-tls-XXXXXX");
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  make_certs();
  test_handshakes();
  test_sni();
  test_data();
  test_bad_input();
  test_resumption();
  test_reload();
  test_conf_errors();
  test_ocsp();
  if (failed == 0) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  } else {
    fprintf(stderr, "files kept in %s\n", dir);
  }
  TUSK_CHECK_REPORT();
}
