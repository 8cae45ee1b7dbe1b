/* Fuzz target for the TLS engine: the input is a client's first flight
 * into a fresh server connection. The first byte picks how it is split
 * into feed calls (0: all at once, n: n bytes at a time), so record and
 * handshake-message reassembly get exercised too. */
#undef NDEBUG /* the replay under CTest must check invariants in every build type */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/common.h"
#include "net/tls.h"

static tusk_tls_ctx_t *ctx;

static void teardown(void) { tusk_tls_ctx_destroy(ctx); }

/* One context per process, with a throwaway self-signed certificate. */
static tusk_tls_ctx_t *get_ctx(void) {
  if (ctx != NULL) return ctx;
  char dir[] = "/tmp/tusk-fuzz-tls-XXXXXX";
  char cert[64], key[64], err[256];
  if (mkdtemp(dir) == NULL) abort();
  snprintf(cert, sizeof cert, "%s/c.pem", dir);
  snprintf(key, sizeof key, "%s/k.pem", dir);
  const char *names[] = {"fuzz.example", "*.fuzz.example"};
  if (tusk_tls_make_self_signed(cert, key, names, 2, err, sizeof err) != 0) {
    fprintf(stderr, "fuzz_tls_feed: %s\n", err);
    abort();
  }
  const char *certs[] = {cert, cert}, *keys[] = {key, key};
  tusk_tls_conf_t conf = {certs, keys, 2, "h2,http/1.1", 0};
  ctx = tusk_tls_ctx_create(&conf, err, sizeof err);
  unlink(cert);
  unlink(key);
  rmdir(dir);
  if (ctx == NULL) {
    fprintf(stderr, "fuzz_tls_feed: %s\n", err);
    abort();
  }
  atexit(teardown);
  return ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tusk_tls_ctx_t *x = get_ctx();
  if (size < 1) return 0;
  size_t step = data[0] ? data[0] : size;
  data++, size--;

  tusk_tls_conn_t *c = tusk_tls_conn_create(x);
  assert(c != NULL);
  tusk_buf_t plain, out;
  tusk_buf_init(&plain);
  tusk_buf_init(&out);
  int failed = 0;
  for (size_t off = 0; off < size; off += step) {
    int rc = tusk_tls_conn_feed(c, data + off, TUSK_MIN(step, size - off), &plain, &out);
    if (failed) {
      assert(rc == TUSK_ETLS); /* a failed connection stays failed */
      continue;
    }
    assert(rc == 0 || rc == TUSK_ETLS);
    if (rc == TUSK_ETLS) {
      failed = 1;
      assert(tusk_tls_conn_error(c)[0] != '\0');
    }
  }
  /* A first flight can never finish a handshake: the client has not seen
   * the server's random yet. So no plaintext, ever. */
  assert(plain.len == 0);
  assert(!tusk_tls_conn_ready(c));
  assert(tusk_tls_conn_version(c) == NULL && tusk_tls_conn_cipher(c) == NULL);
  assert(!tusk_tls_conn_resumed(c));
  size_t before = out.len;
  int w = tusk_tls_conn_write(c, "x", 1, &out);
  assert(failed ? w == TUSK_ETLS : w == 0);
  assert(out.len == before); /* held back until the handshake completes */
  assert(tusk_tls_conn_shutdown(c, &out) == 0);
  tusk_tls_conn_destroy(c);
  tusk_buf_dispose(&plain);
  tusk_buf_dispose(&out);
  return 0;
}
