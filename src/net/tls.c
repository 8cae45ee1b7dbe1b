#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/http.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/common.h"

/* Mozilla's "intermediate" TLS 1.2 list without DHE: forward secrecy and
 * AEAD only. TLS 1.3 keeps OpenSSL's default suites. */
#define TLS12_CIPHERS                                                                        \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#define TICKET_SECRET_MAX 128
#define TICKET_INTERVAL_DEFAULT 3600
#define WRITE_CHUNK 65536
#define READ_CHUNK 16384
#define OCSP_TIMEOUT 3
#define OCSP_MAX_RESPONSE (256 * 1024)

typedef struct tusk_tls_gen_s tusk_tls_gen_t;

/* One certificate with its own SSL_CTX (what SNI switches between). */
typedef struct {
  SSL_CTX *ssl;
  X509 *leaf;   /* borrowed from ssl */
  X509 *issuer; /* borrowed from ssl's chain, or NULL */
  tusk_tls_gen_t *gen;
  unsigned char *ocsp; /* DER OCSP response to staple, under gen->lock */
  size_t ocsp_len;
} tusk_tls_cert_t;

/* A generation: everything loaded from the files at create or one reload.
 * Connections hold a reference, so a reload never pulls certificates from
 * under a running handshake. */
struct tusk_tls_gen_s {
  atomic_int refs;
  pthread_mutex_t lock; /* the staples */
  tusk_tls_cert_t *certs;
  size_t n;
  unsigned char *alpn_wire; /* length-prefixed, server preference order */
  size_t alpn_len;
  char **alpn_names;
  size_t alpn_n;
  unsigned char secret[TICKET_SECRET_MAX];
  size_t secret_len;
  unsigned interval;
};

struct tusk_tls_ctx_s {
  pthread_mutex_t lock; /* cur */
  tusk_tls_gen_t *cur;
  char **certs;
  char **keys;
  size_t n;
  char *alpn;
  int ocsp;
  unsigned char secret[TICKET_SECRET_MAX];
  size_t secret_len;
  unsigned interval;
};

struct tusk_tls_conn_s {
  SSL *ssl;
  tusk_tls_gen_t *gen;
  tusk_buf_t pending; /* written before the handshake completed */
  unsigned done : 1, failed : 1, shut : 1, peer_closed : 1, renego : 1;
  char err[200];
};

static time_t (*tls_clock)(void);

void tusk__tls_set_clock(time_t (*now)(void)) { tls_clock = now; }

static time_t tls_now(void) { return tls_clock ? tls_clock() : time(NULL); }

/* The reason of the oldest queued OpenSSL error, and clears the queue. */
static const char *ossl_reason(void) {
  unsigned long e = ERR_peek_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  ERR_clear_error();
  return r ? r : "unknown error";
}

/* ---- generations ------------------------------------------------------ */

static void gen_unref(tusk_tls_gen_t *g) {
  if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1) return;
  for (size_t i = 0; i < g->n; i++) {
    SSL_CTX_free(g->certs[i].ssl);
    OPENSSL_free(g->certs[i].ocsp);
  }
  free(g->certs);
  free(g->alpn_wire);
  for (size_t i = 0; i < g->alpn_n; i++) free(g->alpn_names[i]);
  free(g->alpn_names);
  OPENSSL_cleanse(g->secret, sizeof g->secret);
  pthread_mutex_destroy(&g->lock);
  free(g);
}

static tusk_tls_gen_t *gen_ref(tusk_tls_gen_t *g) {
  atomic_fetch_add(&g->refs, 1);
  return g;
}

/* Parses "h2,http/1.1" into the wire format and a list of names. */
static int parse_alpn(tusk_tls_gen_t *g, const char *list, char *err, size_t errlen) {
  size_t n = strlen(list);
  g->alpn_wire = malloc(n + 1);
  g->alpn_names = calloc(n + 1, sizeof *g->alpn_names);
  if (g->alpn_wire == NULL || g->alpn_names == NULL) {
    snprintf(err, errlen, "out of memory");
    return TUSK_ENOMEM;
  }
  const char *p = list;
  for (;;) {
    while (*p == ' ') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > p && t[-1] == ' ') t--;
    size_t l = (size_t)(t - p);
    if (l == 0 || l > 255) {
      snprintf(err, errlen, "the ALPN list \"%s\" is invalid: each protocol needs 1 to 255 characters", list);
      return TUSK_EPROTO;
    }
    g->alpn_wire[g->alpn_len++] = (unsigned char)l;
    memcpy(g->alpn_wire + g->alpn_len, p, l);
    g->alpn_len += l;
    if ((g->alpn_names[g->alpn_n++] = strndup(p, l)) == NULL) {
      snprintf(err, errlen, "out of memory");
      return TUSK_ENOMEM;
    }
    if (*e == '\0') break;
    p = e + 1;
  }
  return 0;
}

static int sni_cb(SSL *ssl, int *al, void *arg) {
  tusk_tls_gen_t *g = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == NULL || g->n == 1) return SSL_TLSEXT_ERR_OK;
  size_t len = strlen(name);
  /* Exact names first, so a.example.com beats *.example.com on another cert. */
  static const unsigned flags[2] = {X509_CHECK_FLAG_NO_WILDCARDS, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS};
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < g->n; i++) {
      if (X509_check_host(g->certs[i].leaf, name, len, flags[pass], NULL) == 1) {
        if (SSL_get_SSL_CTX(ssl) != g->certs[i].ssl) SSL_set_SSL_CTX(ssl, g->certs[i].ssl);
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  ERR_clear_error();
  return SSL_TLSEXT_ERR_OK; /* unknown name: the default certificate */
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg) {
  tusk_tls_gen_t *g = arg;
  /* The first of our protocols the client offers (server preference). No
   * overlap: carry on without ALPN rather than failing, like most servers. */
  if (SSL_select_next_proto((unsigned char **)out, outlen, g->alpn_wire, (unsigned)g->alpn_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  return SSL_TLSEXT_ERR_OK;
}

static int status_cb(SSL *ssl, void *arg) {
  tusk_tls_cert_t *ct = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
  if (ct == NULL) return SSL_TLSEXT_ERR_NOACK;
  unsigned char *copy = NULL;
  size_t len = 0;
  pthread_mutex_lock(&ct->gen->lock);
  if (ct->ocsp != NULL && (copy = OPENSSL_memdup(ct->ocsp, ct->ocsp_len)) != NULL) len = ct->ocsp_len;
  pthread_mutex_unlock(&ct->gen->lock);
  if (copy == NULL) return SSL_TLSEXT_ERR_NOACK;
  if (!SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)len)) {
    OPENSSL_free(copy);
    return SSL_TLSEXT_ERR_NOACK;
  }
  return SSL_TLSEXT_ERR_OK;
}

/* ---- session tickets -------------------------------------------------- */

typedef struct {
  unsigned char name[16];
  unsigned char aes[32];
  unsigned char mac[32];
} ticket_keys_t;

static void derive_part(const tusk_tls_gen_t *g, const char *label, uint64_t epoch, unsigned char *out,
                        size_t outlen) {
  unsigned char msg[40], md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  size_t l = strlen(label);
  memcpy(msg, label, l);
  for (int i = 0; i < 8; i++) msg[l + (size_t)i] = (unsigned char)(epoch >> (56 - 8 * i));
  HMAC(EVP_sha256(), g->secret, (int)g->secret_len, msg, l + 8, md, &mdlen);
  memcpy(out, md, outlen);
  OPENSSL_cleanse(md, sizeof md);
}

static void derive_keys(const tusk_tls_gen_t *g, uint64_t epoch, ticket_keys_t *k) {
  derive_part(g, "tusk ticket name", epoch, k->name, sizeof k->name);
  derive_part(g, "tusk ticket aes", epoch, k->aes, sizeof k->aes);
  derive_part(g, "tusk ticket mac", epoch, k->mac, sizeof k->mac);
}

static int set_mac_key(EVP_MAC_CTX *hctx, ticket_keys_t *k) {
  OSSL_PARAM params[3];
  params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k->mac, sizeof k->mac);
  params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
  params[2] = OSSL_PARAM_construct_end();
  return EVP_MAC_CTX_set_params(hctx, params);
}

static int ticket_cb(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc) {
  tusk_tls_conn_t *c = SSL_get_app_data(ssl);
  if (c == NULL) return -1;
  const tusk_tls_gen_t *g = c->gen;
  uint64_t epoch = (uint64_t)tls_now() / g->interval;
  ticket_keys_t k;
  int rc = 0;
  if (enc) {
    derive_keys(g, epoch, &k);
    memcpy(key_name, k.name, sizeof k.name);
    if (RAND_bytes(iv, 16) != 1 /* AES-CBC's IV */ ||
        EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1 || set_mac_key(hctx, &k) != 1)
      rc = -1;
    else
      rc = 1;
  } else {
    for (uint64_t back = 0; back < 2 && back <= epoch; back++) {
      derive_keys(g, epoch - back, &k);
      if (CRYPTO_memcmp(key_name, k.name, sizeof k.name) != 0) continue;
      if (set_mac_key(hctx, &k) != 1 || EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
        rc = -1;
      else
        rc = 2; /* valid; and issue a fresh ticket: a client uses each one once (RFC 8446 C.4) */
      break;
    }
  }
  OPENSSL_cleanse(&k, sizeof k);
  return rc;
}

/* ---- loading ---------------------------------------------------------- */

static int no_password(char *buf, int size, int rwflag, void *u) { return 0; }

static int load_cert(tusk_tls_gen_t *g, tusk_tls_cert_t *ct, const char *cert, const char *key, char *err,
                     size_t errlen) {
  FILE *f = fopen(cert, "r");
  if (f == NULL) {
    snprintf(err, errlen, "cannot open the certificate file %s: %s", cert, strerror(errno));
    return TUSK_ETLS;
  }
  fclose(f);
  if ((f = fopen(key, "r")) == NULL) {
    snprintf(err, errlen, "cannot open the key file %s: %s", key, strerror(errno));
    return TUSK_ETLS;
  }
  fclose(f);

  SSL_CTX *s = SSL_CTX_new(TLS_server_method());
  if (s == NULL) {
    snprintf(err, errlen, "cannot create a TLS context: %s", ossl_reason());
    return TUSK_ETLS;
  }
  ct->ssl = s;
  ct->gen = g;
  SSL_CTX_set_app_data(s, ct);
  if (!SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION) || !SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION) ||
      !SSL_CTX_set_cipher_list(s, TLS12_CIPHERS)) {
    snprintf(err, errlen, "cannot configure TLS protocols and ciphers: %s", ossl_reason());
    return TUSK_ETLS;
  }
  SSL_CTX_set_options(s, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_clear_options(s, SSL_OP_NO_TICKET | SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
  SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
  /* Tickets only: a server-side cache would not be shared between processes. */
  SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_session_id_context(s, (const unsigned char *)"tusk", 4);
  SSL_CTX_set_timeout(s, 2L * g->interval);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(s, ticket_cb);
  SSL_CTX_set_tlsext_servername_callback(s, sni_cb);
  SSL_CTX_set_tlsext_servername_arg(s, g);
  SSL_CTX_set_alpn_select_cb(s, alpn_cb, g);
  SSL_CTX_set_tlsext_status_cb(s, status_cb);

  if (SSL_CTX_use_certificate_chain_file(s, cert) != 1) {
    snprintf(err, errlen, "cannot load the certificate chain from %s: %s (expected PEM certificates, leaf first)",
             cert, ossl_reason());
    return TUSK_ETLS;
  }
  ct->leaf = SSL_CTX_get0_certificate(s);

  BIO *b = BIO_new_file(key, "r");
  EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, no_password, NULL) : NULL;
  BIO_free(b);
  if (pk == NULL) {
    snprintf(err, errlen, "cannot read a private key from %s: %s (expected an unencrypted PEM key)", key,
             ossl_reason());
    return TUSK_ETLS;
  }
  if (X509_check_private_key(ct->leaf, pk) != 1) {
    ERR_clear_error();
    EVP_PKEY_free(pk);
    snprintf(err, errlen, "the private key in %s does not match the certificate in %s", key, cert);
    return TUSK_ETLS;
  }
  int ok = SSL_CTX_use_PrivateKey(s, pk);
  EVP_PKEY_free(pk);
  if (ok != 1) {
    snprintf(err, errlen, "cannot use the private key in %s: %s", key, ossl_reason());
    return TUSK_ETLS;
  }

  STACK_OF(X509) *chain = NULL;
  SSL_CTX_get0_chain_certs(s, &chain);
  for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
    if (X509_check_issued(sk_X509_value(chain, i), ct->leaf) == X509_V_OK) {
      ct->issuer = sk_X509_value(chain, i);
      break;
    }
  }
  return 0;
}

static tusk_tls_gen_t *gen_create(const tusk_tls_ctx_t *ctx, char *err, size_t errlen) {
  tusk_tls_gen_t *g = calloc(1, sizeof *g);
  if (g == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  atomic_init(&g->refs, 1);
  pthread_mutex_init(&g->lock, NULL);
  memcpy(g->secret, ctx->secret, ctx->secret_len);
  g->secret_len = ctx->secret_len;
  g->interval = ctx->interval;
  if ((g->certs = calloc(ctx->n, sizeof *g->certs)) == NULL) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  g->n = ctx->n;
  if (parse_alpn(g, ctx->alpn ? ctx->alpn : "http/1.1", err, errlen) != 0) goto fail;
  for (size_t i = 0; i < ctx->n; i++) {
    if (load_cert(g, &g->certs[i], ctx->certs[i], ctx->keys[i], err, errlen) != 0) goto fail;
  }
  return g;
fail:
  gen_unref(g);
  return NULL;
}

/* ---- contexts --------------------------------------------------------- */

static char *dup_or_null(const char *s, int *oom) {
  if (s == NULL) return NULL;
  char *d = strdup(s);
  if (d == NULL) *oom = 1;
  return d;
}

tusk_tls_ctx_t *tusk_tls_ctx_create(const tusk_tls_conf_t *conf, char *err, size_t errlen) {
  if (conf == NULL || conf->n == 0 || conf->certs == NULL || conf->keys == NULL) {
    snprintf(err, errlen, "TLS needs at least one certificate and key file");
    return NULL;
  }
  for (size_t i = 0; i < conf->n; i++) {
    if (conf->certs[i] == NULL || conf->keys[i] == NULL) {
      snprintf(err, errlen, "TLS certificate %zu has no %s file", i + 1, conf->certs[i] ? "key" : "certificate");
      return NULL;
    }
  }
  tusk_tls_ctx_t *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL) goto oom;
  pthread_mutex_init(&ctx->lock, NULL);
  ctx->n = conf->n;
  ctx->ocsp = conf->ocsp;
  int oom = 0;
  ctx->certs = calloc(conf->n, sizeof *ctx->certs);
  ctx->keys = calloc(conf->n, sizeof *ctx->keys);
  if (ctx->certs == NULL || ctx->keys == NULL) oom = 1;
  for (size_t i = 0; !oom && i < conf->n; i++) {
    ctx->certs[i] = dup_or_null(conf->certs[i], &oom);
    ctx->keys[i] = dup_or_null(conf->keys[i], &oom);
  }
  ctx->alpn = dup_or_null(conf->alpn, &oom);
  if (oom) goto oom;
  ctx->secret_len = 32;
  ctx->interval = TICKET_INTERVAL_DEFAULT;
  if (RAND_bytes(ctx->secret, (int)ctx->secret_len) != 1) {
    snprintf(err, errlen, "cannot get random bytes for session tickets: %s", ossl_reason());
    tusk_tls_ctx_destroy(ctx);
    return NULL;
  }
  if ((ctx->cur = gen_create(ctx, err, errlen)) == NULL) {
    tusk_tls_ctx_destroy(ctx);
    return NULL;
  }
  return ctx;
oom:
  snprintf(err, errlen, "out of memory");
  tusk_tls_ctx_destroy(ctx);
  return NULL;
}

int tusk_tls_ctx_reload(tusk_tls_ctx_t *ctx, char *err, size_t errlen) {
  tusk_tls_gen_t *g = gen_create(ctx, err, errlen);
  if (g == NULL) return TUSK_ETLS;
  pthread_mutex_lock(&ctx->lock);
  tusk_tls_gen_t *old = ctx->cur;
  /* Unchanged certificates keep their staple until the next refresh. */
  pthread_mutex_lock(&old->lock);
  for (size_t i = 0; i < g->n && i < old->n; i++) {
    tusk_tls_cert_t *a = &old->certs[i], *b = &g->certs[i];
    if (a->ocsp != NULL && X509_cmp(a->leaf, b->leaf) == 0 &&
        (b->ocsp = OPENSSL_memdup(a->ocsp, a->ocsp_len)) != NULL)
      b->ocsp_len = a->ocsp_len;
  }
  pthread_mutex_unlock(&old->lock);
  ctx->cur = g;
  pthread_mutex_unlock(&ctx->lock);
  gen_unref(old);
  return 0;
}

void tusk_tls_ctx_destroy(tusk_tls_ctx_t *ctx) {
  if (ctx == NULL) return;
  gen_unref(ctx->cur);
  for (size_t i = 0; i < ctx->n; i++) {
    if (ctx->certs) free(ctx->certs[i]);
    if (ctx->keys) free(ctx->keys[i]);
  }
  free(ctx->certs);
  free(ctx->keys);
  free(ctx->alpn);
  OPENSSL_cleanse(ctx->secret, sizeof ctx->secret);
  pthread_mutex_destroy(&ctx->lock);
  free(ctx);
}

int tusk_tls_ctx_set_ticket_secret(tusk_tls_ctx_t *ctx, const unsigned char *secret, size_t len,
                                   unsigned interval) {
  unsigned char buf[TICKET_SECRET_MAX];
  if (secret == NULL) {
    len = 32;
    if (RAND_bytes(buf, (int)len) != 1) {
      ERR_clear_error();
      return TUSK_ETLS;
    }
  } else {
    if (len < 16 || len > TICKET_SECRET_MAX) return TUSK_EPROTO;
    memcpy(buf, secret, len);
  }
  if (interval == 0) interval = TICKET_INTERVAL_DEFAULT;
  pthread_mutex_lock(&ctx->lock);
  memcpy(ctx->secret, buf, len);
  ctx->secret_len = len;
  ctx->interval = interval;
  tusk_tls_gen_t *g = ctx->cur;
  memcpy(g->secret, buf, len);
  g->secret_len = len;
  g->interval = interval;
  for (size_t i = 0; i < g->n; i++) SSL_CTX_set_timeout(g->certs[i].ssl, 2L * interval);
  pthread_mutex_unlock(&ctx->lock);
  OPENSSL_cleanse(buf, sizeof buf);
  return 0;
}

/* ---- OCSP ------------------------------------------------------------- */

/* Fetches, verifies and returns the DER of a good, current response for
 * ct, or NULL with err. */
static unsigned char *ocsp_fetch(const tusk_tls_cert_t *ct, const char *url, const char *certfile, size_t *outlen,
                                 char *err, size_t errlen) {
  unsigned char *der = NULL;
  char *host = NULL, *port = NULL, *path = NULL;
  int use_ssl = 0;
  OCSP_CERTID *id = NULL;
  OCSP_REQUEST *req = NULL;
  BIO *reqbio = NULL, *rspbio = NULL;
  OCSP_RESPONSE *rsp = NULL;
  OCSP_BASICRESP *basic = NULL;
  X509_STORE *store = NULL;

  if (!OSSL_HTTP_parse_url(url, &use_ssl, NULL, &host, &port, NULL, &path, NULL, NULL)) {
    snprintf(err, errlen, "the OCSP responder URL %s in %s is invalid", url, certfile);
    goto done;
  }
  if ((id = OCSP_cert_to_id(NULL, ct->leaf, ct->issuer)) == NULL || (req = OCSP_REQUEST_new()) == NULL) {
    snprintf(err, errlen, "cannot build an OCSP request for %s: %s", certfile, ossl_reason());
    goto done;
  }
  OCSP_CERTID *reqid = OCSP_CERTID_dup(id);
  if (reqid == NULL || OCSP_request_add0_id(req, reqid) == NULL) {
    OCSP_CERTID_free(reqid);
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  if ((reqbio = ASN1_item_i2d_mem_bio(ASN1_ITEM_rptr(OCSP_REQUEST), (const ASN1_VALUE *)req)) == NULL) {
    snprintf(err, errlen, "cannot encode an OCSP request for %s: %s", certfile, ossl_reason());
    goto done;
  }
  rspbio = OSSL_HTTP_transfer(NULL, host, port, path, use_ssl, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL,
                              "application/ocsp-request", reqbio, "application/ocsp-response", 1,
                              OCSP_MAX_RESPONSE, OCSP_TIMEOUT, 0);
  if (rspbio == NULL) {
    snprintf(err, errlen, "cannot get an OCSP response for %s from %s: %s", certfile, url, ossl_reason());
    goto done;
  }
  rsp = (OCSP_RESPONSE *)ASN1_item_d2i_bio(ASN1_ITEM_rptr(OCSP_RESPONSE), rspbio, NULL);
  if (rsp == NULL) {
    snprintf(err, errlen, "the OCSP responder %s sent an unreadable response for %s", url, certfile);
    ERR_clear_error();
    goto done;
  }
  int st = OCSP_response_status(rsp);
  if (st != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    snprintf(err, errlen, "the OCSP responder %s answered \"%s\" for %s", url, OCSP_response_status_str(st),
             certfile);
    goto done;
  }
  if ((basic = OCSP_response_get1_basic(rsp)) == NULL || (store = X509_STORE_new()) == NULL ||
      !X509_STORE_add_cert(store, ct->issuer) || !X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN)) {
    snprintf(err, errlen, "cannot check the OCSP response for %s: %s", certfile, ossl_reason());
    goto done;
  }
  STACK_OF(X509) *chain = NULL;
  SSL_CTX_get0_chain_certs(ct->ssl, &chain);
  if (OCSP_basic_verify(basic, chain, store, 0) <= 0) {
    snprintf(err, errlen, "the OCSP response for %s from %s does not verify against its issuer: %s", certfile, url,
             ossl_reason());
    goto done;
  }
  int status = -1, reason = 0;
  ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL;
  if (!OCSP_resp_find_status(basic, id, &status, &reason, NULL, &thisupd, &nextupd)) {
    snprintf(err, errlen, "the OCSP response from %s does not cover %s", url, certfile);
    goto done;
  }
  if (status != V_OCSP_CERTSTATUS_GOOD) {
    snprintf(err, errlen, "the OCSP responder %s says %s is %s; not stapling", url, certfile,
             OCSP_cert_status_str(status));
    goto done;
  }
  if (!OCSP_check_validity(thisupd, nextupd, 300, -1)) {
    snprintf(err, errlen, "the OCSP response for %s from %s is outdated or not yet valid", certfile, url);
    ERR_clear_error();
    goto done;
  }
  int n = i2d_OCSP_RESPONSE(rsp, &der);
  if (n <= 0) {
    der = NULL;
    snprintf(err, errlen, "cannot encode the OCSP response for %s", certfile);
    goto done;
  }
  *outlen = (size_t)n;
done:
  X509_STORE_free(store);
  OCSP_BASICRESP_free(basic);
  OCSP_RESPONSE_free(rsp);
  BIO_free(rspbio);
  BIO_free(reqbio);
  OCSP_REQUEST_free(req);
  OCSP_CERTID_free(id);
  OPENSSL_free(host);
  OPENSSL_free(port);
  OPENSSL_free(path);
  ERR_clear_error();
  return der;
}

int tusk_tls_ctx_refresh_ocsp(tusk_tls_ctx_t *ctx, char *err, size_t errlen) {
  if (!ctx->ocsp) return 0;
  pthread_mutex_lock(&ctx->lock);
  tusk_tls_gen_t *g = gen_ref(ctx->cur);
  pthread_mutex_unlock(&ctx->lock);
  int want = 0, stapled = 0;
  char first[256] = "";
  for (size_t i = 0; i < g->n; i++) {
    tusk_tls_cert_t *ct = &g->certs[i];
    STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(ct->leaf);
    if (urls == NULL || sk_OPENSSL_STRING_num(urls) == 0) {
      X509_email_free(urls);
      continue;
    }
    want++;
    char one[256];
    unsigned char *der = NULL;
    size_t len = 0;
    if (ct->issuer == NULL)
      snprintf(one, sizeof one, "%s has an OCSP responder URL but the file lacks its issuer certificate",
               ctx->certs[i]);
    else
      der = ocsp_fetch(ct, sk_OPENSSL_STRING_value(urls, 0), ctx->certs[i], &len, one, sizeof one);
    X509_email_free(urls);
    if (der == NULL) {
      if (first[0] == '\0') snprintf(first, sizeof first, "%s", one);
      continue;
    }
    pthread_mutex_lock(&g->lock);
    OPENSSL_free(ct->ocsp);
    ct->ocsp = der;
    ct->ocsp_len = len;
    pthread_mutex_unlock(&g->lock);
    stapled++;
  }
  gen_unref(g);
  if (want > 0 && stapled == 0) {
    snprintf(err, errlen, "%s", first);
    return TUSK_ETLS;
  }
  if (first[0]) snprintf(err, errlen, "%s", first);
  return stapled;
}

/* ---- connections ------------------------------------------------------ */

static void info_cb(const SSL *ssl, int where, int ret) {
  tusk_tls_conn_t *c = SSL_get_app_data(ssl);
  if (c == NULL) return;
  /* OpenSSL answers a renegotiation ClientHello with a no_renegotiation
   * warning and carries on; we close instead. */
  if ((where & SSL_CB_WRITE_ALERT) == SSL_CB_WRITE_ALERT && (ret & 0xff) == SSL_AD_NO_RENEGOTIATION) c->renego = 1;
  if ((where & SSL_CB_READ_ALERT) == SSL_CB_READ_ALERT && (ret >> 8) == SSL3_AL_FATAL && c->err[0] == '\0')
    snprintf(c->err, sizeof c->err, "the client sent a fatal alert: %s", SSL_alert_desc_string_long(ret));
}

tusk_tls_conn_t *tusk_tls_conn_create(tusk_tls_ctx_t *ctx) {
  tusk_tls_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  tusk_buf_init(&c->pending);
  pthread_mutex_lock(&ctx->lock);
  c->gen = gen_ref(ctx->cur);
  pthread_mutex_unlock(&ctx->lock);
  BIO *rb = NULL, *wb = NULL;
  if ((c->ssl = SSL_new(c->gen->certs[0].ssl)) == NULL || (rb = BIO_new(BIO_s_mem())) == NULL ||
      (wb = BIO_new(BIO_s_mem())) == NULL) {
    BIO_free(rb);
    ERR_clear_error();
    tusk_tls_conn_destroy(c);
    return NULL;
  }
  BIO_set_mem_eof_return(rb, -1); /* empty means "want more", not EOF */
  SSL_set_bio(c->ssl, rb, wb);
  SSL_set_accept_state(c->ssl);
  SSL_set_app_data(c->ssl, c);
  SSL_set_info_callback(c->ssl, info_cb);
  return c;
}

void tusk_tls_conn_destroy(tusk_tls_conn_t *c) {
  if (c == NULL) return;
  SSL_free(c->ssl);
  gen_unref(c->gen);
  tusk_buf_dispose(&c->pending);
  free(c);
}

/* Moves what OpenSSL wrote to the network BIO into out. */
static int drain(tusk_tls_conn_t *c, tusk_buf_t *out) {
  BIO *w = SSL_get_wbio(c->ssl);
  size_t n;
  while ((n = BIO_ctrl_pending(w)) > 0) {
    if (n > INT_MAX) n = INT_MAX;
    if (tusk_buf_reserve(out, n) != 0) return TUSK_ENOMEM;
    int r = BIO_read(w, out->data + out->len, (int)n);
    if (r <= 0) break;
    out->len += (size_t)r;
    out->data[out->len] = '\0';
  }
  return 0;
}

static int fail(tusk_tls_conn_t *c, tusk_buf_t *cipher_out) {
  c->failed = 1;
  unsigned long e = ERR_peek_error();
  if (c->err[0] == '\0') {
    int r = ERR_GET_REASON(e);
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && (r == SSL_R_HTTP_REQUEST || r == SSL_R_HTTPS_PROXY_REQUEST))
      snprintf(c->err, sizeof c->err, "the client sent plain HTTP to the TLS port");
    else if (ERR_GET_LIB(e) == ERR_LIB_SSL && r == SSL_R_UNSUPPORTED_PROTOCOL)
      snprintf(c->err, sizeof c->err, "the client supports only TLS versions older than 1.2");
    else if (e != 0)
      snprintf(c->err, sizeof c->err, "%s: %s", c->done ? "TLS error" : "TLS handshake failed",
               ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "unknown error");
    else
      snprintf(c->err, sizeof c->err, "%s", c->done ? "TLS error" : "TLS handshake failed");
  }
  ERR_clear_error();
  drain(c, cipher_out); /* an alert, if OpenSSL queued one */
  return TUSK_ETLS;
}

static int write_now(tusk_tls_conn_t *c, const char *p, size_t len, tusk_buf_t *cipher_out) {
  while (len > 0) {
    size_t chunk = TUSK_MIN(len, (size_t)WRITE_CHUNK), w = 0;
    ERR_clear_error();
    if (SSL_write_ex(c->ssl, p, chunk, &w) != 1) return fail(c, cipher_out);
    p += w;
    len -= w;
    if (drain(c, cipher_out) != 0) return TUSK_ENOMEM;
  }
  return 0;
}

int tusk_tls_conn_feed(tusk_tls_conn_t *c, const void *cipher, size_t len, tusk_buf_t *plain_out,
                       tusk_buf_t *cipher_out) {
  if (c->failed) return TUSK_ETLS;
  ERR_clear_error();
  const char *p = cipher;
  while (len > 0) {
    int chunk = (int)TUSK_MIN(len, (size_t)INT_MAX);
    int w = BIO_write(SSL_get_rbio(c->ssl), p, chunk);
    if (w <= 0) {
      ERR_clear_error();
      return TUSK_ENOMEM;
    }
    p += w;
    len -= (size_t)w;
  }
  if (!c->done) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ) return drain(c, cipher_out);
      return fail(c, cipher_out);
    }
    c->done = 1;
    if (c->pending.len > 0) {
      int rc = write_now(c, c->pending.data, c->pending.len, cipher_out);
      tusk_buf_dispose(&c->pending);
      if (rc != 0) return rc;
    }
  }
  while (!c->peer_closed) {
    if (tusk_buf_reserve(plain_out, READ_CHUNK) != 0) return TUSK_ENOMEM;
    size_t got = 0;
    int r = SSL_read_ex(c->ssl, plain_out->data + plain_out->len, READ_CHUNK, &got);
    if (r == 1) {
      plain_out->len += got;
      plain_out->data[plain_out->len] = '\0';
      continue;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      c->peer_closed = 1;
      break;
    }
    return fail(c, cipher_out);
  }
  if (c->renego) {
    snprintf(c->err, sizeof c->err, "the client attempted a TLS renegotiation");
    return fail(c, cipher_out);
  }
  return drain(c, cipher_out);
}

int tusk_tls_conn_write(tusk_tls_conn_t *c, const void *plain, size_t len, tusk_buf_t *cipher_out) {
  if (c->failed || c->shut) return TUSK_ETLS;
  if (!c->done) return tusk_buf_append(&c->pending, plain, len);
  return write_now(c, plain, len, cipher_out);
}

int tusk_tls_conn_shutdown(tusk_tls_conn_t *c, tusk_buf_t *cipher_out) {
  if (c->shut || c->failed || !c->done) {
    c->shut = 1;
    return 0;
  }
  c->shut = 1;
  ERR_clear_error();
  SSL_shutdown(c->ssl);
  ERR_clear_error();
  return drain(c, cipher_out);
}

int tusk_tls_conn_ready(const tusk_tls_conn_t *c) { return c->done; }

int tusk_tls_conn_peer_closed(const tusk_tls_conn_t *c) { return c->peer_closed; }

const char *tusk_tls_conn_alpn(const tusk_tls_conn_t *c) {
  const unsigned char *p = NULL;
  unsigned int len = 0;
  SSL_get0_alpn_selected(c->ssl, &p, &len);
  for (size_t i = 0; p != NULL && i < c->gen->alpn_n; i++) {
    if (strlen(c->gen->alpn_names[i]) == len && memcmp(c->gen->alpn_names[i], p, len) == 0)
      return c->gen->alpn_names[i];
  }
  return NULL;
}

const char *tusk_tls_conn_version(const tusk_tls_conn_t *c) { return c->done ? SSL_get_version(c->ssl) : NULL; }

const char *tusk_tls_conn_cipher(const tusk_tls_conn_t *c) {
  return c->done ? SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)) : NULL;
}

const char *tusk_tls_conn_sni(const tusk_tls_conn_t *c) {
  return SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
}

int tusk_tls_conn_resumed(const tusk_tls_conn_t *c) { return c->done && SSL_session_reused(c->ssl); }

const char *tusk_tls_conn_error(const tusk_tls_conn_t *c) { return c->err; }

/* ---- self-signed certificates ----------------------------------------- */

static int add_name(GENERAL_NAMES *gens, const char *name) {
  unsigned char ip[16];
  int type = (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1) ? GEN_IPADD : GEN_DNS;
  if (type == GEN_DNS) {
    if (name[0] == '\0' || strlen(name) > 253) return -1;
    for (const char *p = name; *p; p++) {
      if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '.' || (*p == '*' && p == name && p[1] == '.')))
        return -1;
    }
  }
  GENERAL_NAME *gn = a2i_GENERAL_NAME(NULL, NULL, NULL, type, name, 0);
  if (gn == NULL) return -1;
  if (!sk_GENERAL_NAME_push(gens, gn)) {
    GENERAL_NAME_free(gn);
    return -1;
  }
  return 0;
}

static int add_ext(X509 *x, int nid, const char *value) {
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
  if (ext == NULL) return -1;
  int ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : -1;
}

int tusk_tls_make_self_signed(const char *cert_path, const char *key_path, const char *const *extra_names,
                              size_t n, char *err, size_t errlen) {
  int rc = TUSK_ETLS;
  EVP_PKEY *pk = NULL;
  X509 *x = NULL;
  BIGNUM *serial = NULL;
  GENERAL_NAMES *gens = NULL;
  FILE *f = NULL;

  if ((pk = EVP_EC_gen("P-256")) == NULL || (x = X509_new()) == NULL || (serial = BN_new()) == NULL ||
      (gens = sk_GENERAL_NAME_new_null()) == NULL) {
    snprintf(err, errlen, "cannot create a key and certificate: %s", ossl_reason());
    goto done;
  }
  X509_NAME *name = X509_get_subject_name(x);
  if (!X509_set_version(x, X509_VERSION_3) || !BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
      !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) || !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
      !X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400) || !X509_set_pubkey(x, pk) ||
      !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Tusk development", -1, -1, 0) ||
      !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0) ||
      !X509_set_issuer_name(x, name)) {
    snprintf(err, errlen, "cannot fill in the certificate: %s", ossl_reason());
    goto done;
  }
  static const char *const base[] = {"localhost", "127.0.0.1", "::1"};
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(base); i++) {
    if (add_name(gens, base[i]) != 0) {
      snprintf(err, errlen, "cannot add the name %s: %s", base[i], ossl_reason());
      goto done;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (extra_names[i] == NULL || add_name(gens, extra_names[i]) != 0) {
      ERR_clear_error();
      snprintf(err, errlen, "\"%s\" is neither a DNS name nor an IP address", extra_names[i] ? extra_names[i] : "");
      goto done;
    }
  }
  if (!X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) ||
      add_ext(x, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
      add_ext(x, NID_key_usage, "critical,digitalSignature") != 0 ||
      add_ext(x, NID_ext_key_usage, "serverAuth") != 0 || add_ext(x, NID_subject_key_identifier, "hash") != 0 ||
      !X509_sign(x, pk, EVP_sha256())) {
    snprintf(err, errlen, "cannot sign the certificate: %s", ossl_reason());
    goto done;
  }

  int fd = open(key_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || fchmod(fd, 0600) != 0 || (f = fdopen(fd, "w")) == NULL) {
    snprintf(err, errlen, "cannot write the key file %s: %s", key_path, strerror(errno));
    if (fd >= 0) close(fd);
    goto done;
  }
  int ok = PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
  if (fclose(f) != 0) ok = 0;
  f = NULL;
  if (!ok) {
    snprintf(err, errlen, "cannot write the key file %s: %s", key_path, errno ? strerror(errno) : ossl_reason());
    goto done;
  }
  if ((f = fopen(cert_path, "w")) == NULL) {
    snprintf(err, errlen, "cannot write the certificate file %s: %s", cert_path, strerror(errno));
    goto done;
  }
  ok = PEM_write_X509(f, x);
  if (fclose(f) != 0) ok = 0;
  f = NULL;
  if (!ok) {
    snprintf(err, errlen, "cannot write the certificate file %s: %s", cert_path, strerror(errno));
    goto done;
  }
  rc = 0;
done:
  ERR_clear_error();
  GENERAL_NAMES_free(gens);
  BN_free(serial);
  X509_free(x);
  EVP_PKEY_free(pk);
  return rc;
}
