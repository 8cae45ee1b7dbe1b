/* TLS engine on OpenSSL memory BIOs: it never touches a socket. The
 * connection layer reads ciphertext with libuv, feeds it here, and sends
 * whatever lands in cipher_out; plaintext comes back in plain_out.
 *
 * Threads: a tusk_tls_ctx_t may be shared by several event loops
 * (threads) for tusk_tls_conn_create; set_ticket_secret must not run
 * concurrently with anything, ctx_reload not with itself. refresh_ocsp may
 * run on another thread while handshakes and a ctx_reload go on (a staple
 * it fetches for a set that a reload replaced meanwhile is dropped until
 * the next refresh). A
 * tusk_tls_conn_t belongs to one loop. All conn functions may be called
 * from libuv callbacks; none of them blocks. */
#ifndef TUSK_NET_TLS_H
#define TUSK_NET_TLS_H

#include <stddef.h>
#include <time.h>

#include "core/buf.h"

typedef struct tusk_tls_ctx_s tusk_tls_ctx_t;   /* one per process; holds SSL_CTXs */
typedef struct tusk_tls_conn_s tusk_tls_conn_t; /* one per connection */

typedef struct {
  const char *const *certs; /* n PEM certificate chain files (leaf first) */
  const char *const *keys;  /* n matching PEM key files (unencrypted) */
  size_t n;                 /* >= 1; certs[0] is the default. SNI picks the first cert whose SAN DNS
                               names (or CN if it has none) match exactly, else the first wildcard match
                               (*.example.com covers one label), else the default. */
  const char *alpn;         /* server preference list, comma separated, e.g. "h2,http/1.1";
                               NULL = "http/1.1" only */
  int ocsp;                 /* 1: tusk_tls_ctx_refresh_ocsp staples responses for certs that carry
                               an OCSP responder URL (AIA) */
} tusk_tls_conf_t;

/* Loads certificates and keys (the paths and alpn are copied) and checks
 * that each key matches its certificate. TLS 1.2 and 1.3 only, ECDHE +
 * AEAD ciphers for 1.2, server cipher preference, no compression,
 * renegotiation refused, stateless session tickets (keys from a random
 * secret, rotating hourly, until tusk_tls_ctx_set_ticket_secret). Does not
 * fetch OCSP. Returns NULL with one sentence in err naming the file and
 * the problem. */
tusk_tls_ctx_t *tusk_tls_ctx_create(const tusk_tls_conf_t *conf, char *err, size_t errlen);
/* Re-reads the same files (SIGHUP): new connections use the new
 * certificates, existing connections keep theirs (each holds a reference
 * on the set it started with). Unchanged certificates keep their OCSP
 * staple; call tusk_tls_ctx_refresh_ocsp afterwards for changed ones.
 * Ticket keys are kept, so tickets issued before the reload still resume.
 * Returns 0, or negative with err filled and the old certificates kept. */
int tusk_tls_ctx_reload(tusk_tls_ctx_t *ctx, char *err, size_t errlen);
/* Connections created from ctx may outlive it. NULL is a no-op. */
void tusk_tls_ctx_destroy(tusk_tls_ctx_t *ctx);
/* Session-ticket keys for epoch e = floor(now / interval) are
 * HMAC-SHA256(secret, label || e): new tickets use the current epoch's
 * key, the previous epoch's key is still accepted (and the ticket is
 * renewed), older tickets mean a full handshake. Every process forked
 * after this call, and every thread, therefore accepts the others'
 * tickets. Call it before connections are served (in the parent, before
 * forking): it is not synchronised with running handshakes. secret NULL: 32 random bytes (RAND_bytes); otherwise 16..128
 * bytes, copied. interval 0 means 3600 seconds. Tickets advertise a
 * lifetime of 2 * interval. Returns 0, TUSK_EPROTO for a bad length, or
 * TUSK_ETLS if no randomness is available. */
int tusk_tls_ctx_set_ticket_secret(tusk_tls_ctx_t *ctx, const unsigned char *secret, size_t len,
                                   unsigned interval);
/* With conf->ocsp, fetches an OCSP response for each certificate that has
 * a responder URL (HTTP POST with OpenSSL's HTTP client, honouring
 * http_proxy/no_proxy, 3 s timeout per certificate), verifies it against
 * the issuer from the certificate's chain file, and staples it if the
 * status is good and current. Blocks: call it from the master, after
 * create and reload and then periodically (e.g. hourly). A failed fetch
 * keeps the previous staple. Returns the number of certificates stapled
 * (0 with conf->ocsp off or no responder URLs), or negative with err
 * describing the first failure when nothing could be stapled although
 * some certificate has a responder URL. */
int tusk_tls_ctx_refresh_ocsp(tusk_tls_ctx_t *ctx, char *err, size_t errlen);

/* Returns NULL on out of memory. */
tusk_tls_conn_t *tusk_tls_conn_create(tusk_tls_ctx_t *ctx);
/* NULL is a no-op. Sends nothing: call tusk_tls_conn_shutdown first for a
 * clean close. */
void tusk_tls_conn_destroy(tusk_tls_conn_t *c);
/* Feeds ciphertext received from the socket (any split, down to single
 * bytes). Appends decrypted application data to plain_out and any bytes
 * that must be sent to the peer (handshake, alerts, session tickets,
 * data written before the handshake completed) to cipher_out. Returns 0
 * (also while the handshake is incomplete: nothing is appended then),
 * TUSK_ENOMEM, or TUSK_ETLS when the peer sent garbage / plain HTTP /
 * failed the handshake / attempted renegotiation: cipher_out may then hold
 * an alert to send before closing, and every later call returns
 * TUSK_ETLS. Check tusk_tls_conn_peer_closed after it. */
int tusk_tls_conn_feed(tusk_tls_conn_t *c, const void *cipher, size_t len, tusk_buf_t *plain_out,
                       tusk_buf_t *cipher_out);
/* Encrypts application data into cipher_out. Before the handshake has
 * completed the data is copied into an internal buffer and encrypted into
 * the cipher_out of the feed call that completes it (returns 0). Returns
 * 0, TUSK_ENOMEM, or TUSK_ETLS after a failure or a shutdown. */
int tusk_tls_conn_write(tusk_tls_conn_t *c, const void *plain, size_t len, tusk_buf_t *cipher_out);
/* Appends a close_notify alert to cipher_out (nothing before the
 * handshake has completed or after a failure); later writes fail. 0 or
 * TUSK_ENOMEM. */
int tusk_tls_conn_shutdown(tusk_tls_conn_t *c, tusk_buf_t *cipher_out);
/* 1 once the handshake has completed. */
int tusk_tls_conn_ready(const tusk_tls_conn_t *c);
/* 1 once the peer's close_notify has been read. */
int tusk_tls_conn_peer_closed(const tusk_tls_conn_t *c);
/* Negotiated ALPN protocol ("h2", "http/1.1") or NULL when the client sent
 * no ALPN or none in common (the connection then proceeds without ALPN;
 * treat it as HTTP/1.1). */
const char *tusk_tls_conn_alpn(const tusk_tls_conn_t *c);
/* "TLSv1.3" or "TLSv1.2" like $_SERVER['SSL_PROTOCOL'], NULL before the
 * handshake. */
const char *tusk_tls_conn_version(const tusk_tls_conn_t *c);
/* OpenSSL's cipher name like $_SERVER['SSL_CIPHER'], e.g.
 * "TLS_AES_256_GCM_SHA384" or "ECDHE-RSA-AES128-GCM-SHA256"; NULL before
 * the handshake. */
const char *tusk_tls_conn_cipher(const tusk_tls_conn_t *c);
/* The server name the client asked for, or NULL. */
const char *tusk_tls_conn_sni(const tusk_tls_conn_t *c);
/* 1 if the session was resumed from a ticket. */
int tusk_tls_conn_resumed(const tusk_tls_conn_t *c);
/* A human reason for the last TUSK_ETLS (for a debug log line); "" if
 * none. Valid until the next call on c. */
const char *tusk_tls_conn_error(const tusk_tls_conn_t *c);

/* Creates a self-signed certificate for local development: EC P-256 key,
 * CN localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1 plus extra_names
 * (IP addresses become IP entries, anything else a DNS entry, wildcards
 * allowed), valid for one year, serverAuth. Writes cert_path (0644) and
 * key_path (0600, PKCS#8 PEM), replacing existing files. Returns 0 or
 * negative with err. */
int tusk_tls_make_self_signed(const char *cert_path, const char *key_path, const char *const *extra_names,
                              size_t n, char *err, size_t errlen);

/* For tests only: replaces the clock used to pick ticket-key epochs (NULL
 * restores time()). Process-wide. */
void tusk__tls_set_clock(time_t (*now)(void));

#endif
