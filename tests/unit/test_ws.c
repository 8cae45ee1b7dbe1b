/* Unit tests for the WebSocket engine: handshake helpers, extension
 * negotiation, the UTF-8 validator (checked exhaustively against a plain
 * decoder up to three bytes), a server and a client engine talking through
 * their output buffers, RFC 7692's example frames, every way a peer can
 * make the engine fail (with the close code it queues), limits, and the
 * heap an idle connection keeps. Frames for the failure cases are built by
 * hand here, independently of wslay. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wslay/wslay.h>
#include <zlib.h>

#include "core/buf.h"
#include "core/common.h"
#include "http/ws.h"

#include "check.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* ---- what the callbacks saw ---------------------------------------------- */

#define LOG_MAX 64

typedef struct {
  int n;
  int op[LOG_MAX];
  char *data[LOG_MAX];
  size_t len[LOG_MAX];
  int pings, pongs;
  char ping[126], pong[126];
  size_t ping_len, pong_len;
  int closes, close_code;
  char reason[126];
  size_t reason_len;
  tusk_ws_t *echo; /* if set, messages are sent back on it */
} log_t;

static void on_message(void *ud, int op, const void *data, size_t len) {
  log_t *l = ud;
  if (l->n < LOG_MAX) {
    l->op[l->n] = op;
    l->data[l->n] = malloc(len + 1);
    if (len) memcpy(l->data[l->n], data, len);
    l->data[l->n][len] = '\0';
    l->len[l->n] = len;
  }
  l->n++;
  if (l->echo != NULL) tusk_ws_send(l->echo, op, data, len);
}

static void on_ping(void *ud, const void *data, size_t len) {
  log_t *l = ud;
  l->pings++;
  memcpy(l->ping, data, len);
  l->ping_len = len;
}

static void on_pong(void *ud, const void *data, size_t len) {
  log_t *l = ud;
  l->pongs++;
  memcpy(l->pong, data, len);
  l->pong_len = len;
}

static void on_close(void *ud, int code, const char *reason, size_t len) {
  log_t *l = ud;
  l->closes++;
  l->close_code = code;
  memcpy(l->reason, reason, len);
  l->reason_len = len;
}

static const tusk_ws_callbacks_t cbs = {on_message, on_ping, on_pong, on_close};

static void log_free(log_t *l) {
  for (int i = 0; i < l->n && i < LOG_MAX; i++) free(l->data[i]);
  memset(l, 0, sizeof *l);
}

static tusk_ws_t *make(tusk_ws_role_t role, const tusk_ws_deflate_t *d, size_t max, log_t *l) {
  tusk_ws_config_t c;
  memset(&c, 0, sizeof c);
  c.role = role;
  c.max_message = max;
  if (d != NULL) c.deflate = *d;
  return tusk_ws_create(&c, l ? &cbs : NULL, l);
}

/* Feeds len bytes step at a time (0: at once); returns the first error. */
static int feed(tusk_ws_t *ws, const void *data, size_t len, size_t step) {
  const uint8_t *p = data;
  if (step == 0) step = len ? len : 1;
  int rc = 0;
  for (size_t off = 0; off < len; off += step) {
    int r = tusk_ws_feed(ws, p + off, TUSK_MIN(step, len - off));
    if (r != 0 && rc == 0) rc = r;
  }
  return rc;
}

/* Moves a's output into b until both are quiet. Returns the first error. */
static int pump(tusk_ws_t *a, tusk_ws_t *b, size_t step) {
  int rc = 0;
  for (int round = 0; round < 100; round++) {
    size_t la, lb;
    const void *pa = tusk_ws_output(a, &la);
    if (la) {
      char *copy = malloc(la);
      memcpy(copy, pa, la);
      tusk_ws_output_consume(a, la);
      int r = feed(b, copy, la, step);
      if (r && !rc) rc = r;
      free(copy);
    }
    const void *pb = tusk_ws_output(b, &lb);
    if (lb) {
      char *copy = malloc(lb);
      memcpy(copy, pb, lb);
      tusk_ws_output_consume(b, lb);
      int r = feed(a, copy, lb, step);
      if (r && !rc) rc = r;
      free(copy);
    }
    if (!la && !lb) break;
  }
  return rc;
}

/* A frame as a peer would send it; mask: client frames (key 37 fa 21 3d). */
static size_t mkframe(uint8_t *out, int fin, int rsv, int op, int mask, const void *payload,
                      size_t len) {
  static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t n = 0;
  out[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | op);
  uint8_t m = mask ? 0x80 : 0;
  if (len < 126) {
    out[n++] = (uint8_t)(m | len);
  } else if (len < 65536) {
    out[n++] = m | 126;
    out[n++] = (uint8_t)(len >> 8);
    out[n++] = (uint8_t)len;
  } else {
    out[n++] = m | 127;
    for (int i = 7; i >= 0; i--) out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
  }
  if (mask) {
    memcpy(out + n, key, 4);
    n += 4;
  }
  const uint8_t *p = payload;
  for (size_t i = 0; i < len; i++) out[n + i] = mask ? p[i] ^ key[i % 4] : p[i];
  return n + len;
}

/* Walks the frames in ws's output; returns the first close's code (1005
 * for an empty one), 0 if there is none. *count: close frames seen. */
static int out_close_code(tusk_ws_t *ws, int *count) {
  size_t len;
  const uint8_t *p = tusk_ws_output(ws, &len);
  int code = 0, n = 0;
  size_t off = 0;
  while (p != NULL && off + 2 <= len) {
    int op = p[off] & 0x0f, masked = p[off + 1] & 0x80;
    uint64_t plen = p[off + 1] & 0x7f;
    size_t h = 2;
    if (plen == 126) {
      plen = (uint64_t)p[off + 2] << 8 | p[off + 3];
      h = 4;
    } else if (plen == 127) {
      plen = 0;
      for (int i = 0; i < 8; i++) plen = plen << 8 | p[off + 2 + i];
      h = 10;
    }
    const uint8_t *key = p + off + h;
    if (masked) h += 4;
    if (op == TUSK_WS_CLOSE) {
      if (n++ == 0) {
        if (plen >= 2) {
          uint8_t b0 = p[off + h], b1 = p[off + h + 1];
          if (masked) b0 ^= key[0], b1 ^= key[1];
          code = b0 << 8 | b1;
        } else {
          code = TUSK_WS_NO_STATUS;
        }
      }
    }
    off += h + plen;
  }
  if (count != NULL) *count = n;
  return code;
}

/* ---- handshake ----------------------------------------------------------- */

static void test_handshake(void) {
  char out[TUSK_WS_ACCEPT_LEN + 1];
  const char *k = "dGhlIHNhbXBsZSBub25jZQ==";
  CHECK_EQ(tusk_ws_accept_key(k, strlen(k), out), 0);
  CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);

  CHECK_EQ(tusk_ws_check_key(k, strlen(k)), 0);
  CHECK_EQ(tusk_ws_check_key("dGhlIHNhbXBsZSBub25jZQ=", 23), TUSK_EPROTO);
  CHECK_EQ(tusk_ws_check_key("dGhlIHNhbXBsZSBub25jZQ==x", 25), TUSK_EPROTO);
  CHECK_EQ(tusk_ws_check_key("dGhlIHNhbXBsZSBub25jZQ=a", 24), TUSK_EPROTO);
  CHECK_EQ(tusk_ws_check_key("dGhlIHNhbXBsZSBub25j*Q==", 24), TUSK_EPROTO);
  CHECK_EQ(tusk_ws_check_key("dGhlIHNhbXBsZSBub25jZQZZ", 24), TUSK_EPROTO);
  CHECK_EQ(tusk_ws_check_key("", 0), TUSK_EPROTO);

  CHECK_EQ(tusk_ws_check_version("13", 2), 0);
  CHECK_EQ(tusk_ws_check_version("8", 1), TUSK_EPROTO);
  CHECK_EQ(tusk_ws_check_version("130", 3), TUSK_EPROTO);
  CHECK_EQ(tusk_ws_check_version("", 0), TUSK_EPROTO);

  char key[TUSK_WS_KEY_LEN + 1], key2[TUSK_WS_KEY_LEN + 1];
  CHECK_EQ(tusk_ws_make_key(key), 0);
  CHECK_EQ(tusk_ws_make_key(key2), 0);
  CHECK_EQ(strlen(key), TUSK_WS_KEY_LEN);
  CHECK_EQ(tusk_ws_check_key(key, strlen(key)), 0);
  CHECK(strcmp(key, key2) != 0);
  CHECK_EQ(tusk_ws_accept_key(key, strlen(key), out), 0);
  CHECK_EQ(tusk_ws_check_accept(key, strlen(key), out, strlen(out)), 0);
  out[3] ^= 1;
  CHECK_EQ(tusk_ws_check_accept(key, strlen(key), out, strlen(out)), TUSK_EPROTO);
  CHECK_EQ(tusk_ws_check_accept(k, strlen(k), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28), 0);
  CHECK_EQ(tusk_ws_check_accept(k, strlen(k), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo", 27), TUSK_EPROTO);
}

static int origin_ok(const char *list, const char *origin) {
  return tusk_ws_origin_allowed(list, list ? strlen(list) : 0, origin, origin ? strlen(origin) : 0);
}

static void test_origin(void) {
  const char *l = "https://good.example\nhttps://*.tusk.test, http://local:8080";
  CHECK_EQ(origin_ok(l, "https://good.example"), 1);
  CHECK_EQ(origin_ok(l, "HTTPS://GOOD.Example"), 1);
  CHECK_EQ(origin_ok(l, "https://good.example.evil"), 0);
  CHECK_EQ(origin_ok(l, "http://good.example"), 0);
  CHECK_EQ(origin_ok(l, "https://a.tusk.test"), 1);
  CHECK_EQ(origin_ok(l, "https://a.b-c.tusk.test"), 1);
  CHECK_EQ(origin_ok(l, "https://tusk.test"), 0);          /* a subdomain is needed */
  CHECK_EQ(origin_ok(l, "https://.tusk.test"), 0);
  CHECK_EQ(origin_ok(l, "https://eviltusk.test"), 0);
  CHECK_EQ(origin_ok(l, "https://a/b.tusk.test"), 0);      /* labels only */
  CHECK_EQ(origin_ok(l, "https://a.tusk.test:444"), 0);
  CHECK_EQ(origin_ok(l, "http://local:8080"), 1);
  CHECK_EQ(origin_ok(l, "http://local"), 0);
  CHECK_EQ(origin_ok(l, "null"), 0);
  CHECK_EQ(origin_ok(l, ""), 0);
  CHECK_EQ(origin_ok(l, NULL), 1);                         /* no Origin: not a browser */
  CHECK_EQ(origin_ok("", "https://x"), 1);                 /* no list: any */
  CHECK_EQ(origin_ok(NULL, "https://x"), 1);
  CHECK_EQ(origin_ok(" , \n ", "https://x"), 1);          /* only separators: no list */
  CHECK_EQ(origin_ok("*", "https://anything:1"), 1);
  CHECK_EQ(origin_ok("https://a,*", "null"), 1);
  CHECK_EQ(origin_ok("  https://a  ", "https://a"), 1);
  CHECK_EQ(origin_ok("https://*.", "https://x."), 0);
  CHECK_EQ(origin_ok("*x", "*x"), 0);
  CHECK_EQ(tusk_ws_origin_allowed("https://ab", 9, "https://a", 9), 1); /* lengths, not NULs */
}

/* ---- permessage-deflate negotiation --------------------------------------- */

static int nego(const char *offers, const tusk_ws_deflate_t *pref, tusk_ws_deflate_t *out,
                char *resp) {
  static const tusk_ws_deflate_t none = {0};
  return tusk_ws_deflate_negotiate(offers, strlen(offers), pref ? pref : &none, out, resp,
                                   TUSK_WS_EXT_MAX);
}

static void test_negotiate(void) {
  tusk_ws_deflate_t d;
  char resp[TUSK_WS_EXT_MAX];

  CHECK_EQ(nego("permessage-deflate", NULL, &d, resp), 1);
  CHECK(strcmp(resp, "permessage-deflate") == 0);
  CHECK(d.enabled && !d.server_no_context_takeover && !d.client_no_context_takeover);
  CHECK(d.server_max_window_bits == 15 && d.client_max_window_bits == 15);

  /* Chrome's offer. */
  CHECK_EQ(nego("permessage-deflate; client_max_window_bits", NULL, &d, resp), 1);
  CHECK(strcmp(resp, "permessage-deflate") == 0);
  tusk_ws_deflate_t pref = {0, 0, 0, 0, 10};
  CHECK_EQ(nego("permessage-deflate; client_max_window_bits", &pref, &d, resp), 1);
  CHECK(strcmp(resp, "permessage-deflate; client_max_window_bits=10") == 0);
  CHECK_EQ(d.client_max_window_bits, 10);
  /* Without the parameter in the offer the client's window cannot be limited. */
  CHECK_EQ(nego("permessage-deflate", &pref, &d, resp), 1);
  CHECK(strcmp(resp, "permessage-deflate") == 0);
  CHECK_EQ(d.client_max_window_bits, 15);

  CHECK_EQ(nego("permessage-deflate; server_max_window_bits=10", NULL, &d, resp), 1);
  CHECK(strcmp(resp, "permessage-deflate; server_max_window_bits=10") == 0);
  CHECK_EQ(d.server_max_window_bits, 10);
  tusk_ws_deflate_t pref2 = {0, 1, 1, 9, 0};
  CHECK_EQ(nego("permessage-deflate; server_max_window_bits=12", &pref2, &d, resp), 1);
  CHECK(strcmp(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                     "server_max_window_bits=9") == 0);
  CHECK(d.server_no_context_takeover && d.client_no_context_takeover);
  CHECK_EQ(d.server_max_window_bits, 9);
  /* A preference for the server's window is announced even when not offered. */
  CHECK_EQ(nego("permessage-deflate", &pref2, &d, resp), 1);
  CHECK(strstr(resp, "server_max_window_bits=9") != NULL);

  /* Quoted values, case, whitespace, the client's own no_context_takeover. */
  CHECK_EQ(nego("PerMessage-Deflate ;\tserver_max_window_bits = \"11\" ; client_no_context_takeover",
                NULL, &d, resp), 1);
  CHECK(strcmp(resp, "permessage-deflate; client_no_context_takeover; server_max_window_bits=11") ==
        0);
  CHECK(strcmp("permessage-deflate; client_max_window_bits=8",
               (nego("permessage-deflate; client_max_window_bits=8", NULL, &d, resp), resp)) == 0);
  CHECK_EQ(d.client_max_window_bits, 8);

  /* Declined offers; the next acceptable one wins. */
  const char *bad[] = {
      "permessage-deflate; server_max_window_bits",      /* needs a value */
      "permessage-deflate; server_max_window_bits=7",
      "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_max_window_bits=08",   /* leading zero */
      "permessage-deflate; server_max_window_bits=1O",
      "permessage-deflate; server_max_window_bits=100000000000000000010",
      "permessage-deflate; client_max_window_bits=16",
      "permessage-deflate; client_max_window_bits=",
      "permessage-deflate; server_no_context_takeover=1",
      "permessage-deflate; client_no_context_takeover=\"x\"",
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
      "permessage-deflate; server_max_window_bits=9; server_max_window_bits=9",
      "permessage-deflate; foo",
      "permessage-deflate; foo=bar",
      "permessage-deflate;",
      "permessage-deflate; ;",
      "permessage-deflate x",
      "permessage-deflate; server_max_window_bits=\"1 0\"",
      "permessage-deflate; server_max_window_bits=\"10",
      "permessage-deflate; server_max_window_bits=\"\"",
      "x-webkit-deflate-frame",
      "permessage-deflat",
      "",
      ",,, ,",
      ";;;",
      "\"permessage-deflate\"",
  };
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(bad); i++) {
    int r = nego(bad[i], NULL, &d, resp);
    if (r != 0) fprintf(stderr, "accepted: %s\n", bad[i]);
    CHECK_EQ(r, 0);
    CHECK(!d.enabled);
    /* An unterminated quote runs to the end: nothing after it can count. */
    if (strstr(bad[i], "=\"10") != NULL && bad[i][strlen(bad[i]) - 1] != '"') continue;
    char two[256];
    snprintf(two, sizeof two, "%s, permessage-deflate; server_max_window_bits=12", bad[i]);
    r = nego(two, NULL, &d, resp);
    if (r != 1 || d.server_max_window_bits != 12) fprintf(stderr, "second not taken: %s\n", two);
    CHECK(r == 1 && d.server_max_window_bits == 12);
  }
  CHECK_EQ(nego("x-webkit-deflate-frame; no_context_takeover, permessage-deflate; "
                "client_max_window_bits, permessage-deflate",
                &pref, &d, resp), 1);
  CHECK(strcmp(resp, "permessage-deflate; client_max_window_bits=10") == 0);
  /* Escapes inside a quoted value of another extension do not split it. */
  CHECK_EQ(nego("foo; a=\"x\\\",permessage-deflate=\", permessage-deflate", NULL, &d, resp), 1);

  CHECK_EQ(tusk_ws_deflate_negotiate("permessage-deflate", 18, &pref, &d, resp, 10), TUSK_ELIMIT);
  /* The longest response fits. */
  tusk_ws_deflate_t all = {0, 1, 1, 9, 9};
  CHECK_EQ(nego("permessage-deflate; client_max_window_bits", &all, &d, resp), 1);
  CHECK(strlen(resp) < TUSK_WS_EXT_MAX);
}

static void test_offer_confirm(void) {
  char offer[TUSK_WS_EXT_MAX], resp[TUSK_WS_EXT_MAX];
  tusk_ws_deflate_t sd, cd;

  tusk_ws_deflate_t none = {0};
  CHECK_EQ(tusk_ws_deflate_offer(&none, offer, sizeof offer), 0);
  CHECK(strcmp(offer, "permessage-deflate; client_max_window_bits") == 0);
  CHECK_EQ(tusk_ws_deflate_offer(&none, offer, 8), TUSK_ELIMIT);

  /* Round trips: what the server answers, the client confirms, and both
   * end with the same parameters. */
  tusk_ws_deflate_t prefs[] = {
      {0, 0, 0, 0, 0}, {0, 1, 0, 0, 0}, {0, 0, 1, 0, 0}, {0, 0, 0, 10, 0},
      {0, 0, 0, 0, 11}, {0, 1, 1, 9, 12},
  };
  tusk_ws_deflate_t sprefs[] = {{0, 0, 0, 0, 0}, {0, 1, 1, 12, 9}};
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(prefs); i++) {
    for (size_t j = 0; j < TUSK_ARRAY_SIZE(sprefs); j++) {
      CHECK_EQ(tusk_ws_deflate_offer(&prefs[i], offer, sizeof offer), 0);
      CHECK_EQ(tusk_ws_deflate_negotiate(offer, strlen(offer), &sprefs[j], &sd, resp, sizeof resp), 1);
      CHECK_EQ(tusk_ws_deflate_confirm(resp, strlen(resp), &prefs[i], &cd), 1);
      CHECK(memcmp(&sd, &cd, sizeof sd) == 0);
    }
  }

  CHECK_EQ(tusk_ws_deflate_confirm("", 0, &none, &cd), 0);
  CHECK(!cd.enabled);
  CHECK_EQ(tusk_ws_deflate_confirm("permessage-deflate; server_max_window_bits=10", 45, &none, &cd), 1);
  CHECK_EQ(cd.server_max_window_bits, 10);
  tusk_ws_deflate_t snct = {0, 1, 0, 10, 0};
  const char *bad[] = {
      "x-foo",
      "permessage-deflate, permessage-deflate",
      "permessage-deflate, x-foo",
      "permessage-deflate; foo",
      "permessage-deflate; client_max_window_bits", /* a response gives the value */
      "permessage-deflate; server_max_window_bits=16",
  };
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(bad); i++)
    CHECK_EQ(tusk_ws_deflate_confirm(bad[i], strlen(bad[i]), &none, &cd), TUSK_EPROTO);
  const char *bad_snct[] = {
      "permessage-deflate; server_max_window_bits=10",              /* snct dropped */
      "permessage-deflate; server_no_context_takeover",             /* window dropped */
      "permessage-deflate; server_no_context_takeover; server_max_window_bits=11", /* larger */
  };
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(bad_snct); i++)
    CHECK_EQ(tusk_ws_deflate_confirm(bad_snct[i], strlen(bad_snct[i]), &snct, &cd), TUSK_EPROTO);
  const char *ok = "permessage-deflate; server_no_context_takeover; server_max_window_bits=9";
  CHECK_EQ(tusk_ws_deflate_confirm(ok, strlen(ok), &snct, &cd), 1);
  CHECK(cd.server_no_context_takeover && cd.server_max_window_bits == 9);
}

/* ---- UTF-8 ----------------------------------------------------------------- */

/* A plain decoder to check the DFA against: 1 if s is valid UTF-8. */
static int ref_utf8(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t c = s[i], min;
    size_t k;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      k = 1, c &= 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      k = 2, c &= 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      k = 3, c &= 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (i + k >= n + 0 && i + k > n - 1 + 1) return 0;
    if (i + k >= n) return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80) return 0;
      c = c << 6 | (s[i + j] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    i += k + 1;
  }
  return 1;
}

static int dfa_ok(const void *s, size_t n) { return tusk_ws_utf8_check(0, s, n) == TUSK_WS_UTF8_ACCEPT; }

static void test_utf8(void) {
  const char *valid[] = {"", "hello", "\xc2\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                         "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbf",
                         "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xf0\x90\x80\x80",
                         "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"};
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(valid); i++) CHECK(dfa_ok(valid[i], strlen(valid[i])));
  const char *invalid[] = {
      "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", /* overlong */
      "\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80",                                      /* surrogates */
      "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf7\xbf\xbf\xbf", "\xf8\x88\x80\x80\x80",              /* > U+10FFFF */
      "\xff", "\xfe", "\x80", "\xbf", "\xc2\x41", "\xe2\x82\x41", "\xc2",  "\xe2\x82", "\xf0\x9f\x98", /* stray, truncated */
      "abc\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited",
  };
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(invalid); i++) CHECK(!dfa_ok(invalid[i], strlen(invalid[i])));
  /* Fail fast: the state is REJECT at the first impossible byte. */
  CHECK_EQ(tusk_ws_utf8_check(0, "\xf4\x90", 2), TUSK_WS_UTF8_REJECT);
  CHECK_EQ(tusk_ws_utf8_check(0, "\xed\xa0", 2), TUSK_WS_UTF8_REJECT);
  CHECK_EQ(tusk_ws_utf8_check(0, "\xe0\x80", 2), TUSK_WS_UTF8_REJECT);
  CHECK(tusk_ws_utf8_check(0, "\xf0\x9f\x98", 3) > TUSK_WS_UTF8_REJECT); /* merely incomplete */
  CHECK_EQ(tusk_ws_utf8_check(TUSK_WS_UTF8_REJECT, "a", 1), TUSK_WS_UTF8_REJECT); /* sticky */
  CHECK_EQ(tusk_ws_utf8_check(77, "a", 1), TUSK_WS_UTF8_REJECT);

  /* Every split of a valid string gives the same answer. */
  const char *s = "a\xc2\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
  size_t n = strlen(s);
  int splits_ok = 1;
  for (size_t i = 0; i <= n; i++) {
    uint32_t st = tusk_ws_utf8_check(0, s, i);
    st = tusk_ws_utf8_check(st, s + i, n - i);
    if (st != TUSK_WS_UTF8_ACCEPT) splits_ok = 0;
  }
  CHECK(splits_ok);

  /* Exhaustive against the plain decoder: all 1-, 2- and 3-byte strings. */
  long mismatches = 0;
  uint8_t b[4];
  for (unsigned x = 0; x < 256; x++) {
    b[0] = (uint8_t)x;
    mismatches += dfa_ok(b, 1) != ref_utf8(b, 1);
    for (unsigned y = 0; y < 256; y++) {
      b[1] = (uint8_t)y;
      mismatches += dfa_ok(b, 2) != ref_utf8(b, 2);
      for (unsigned z = 0; z < 256; z++) {
        b[2] = (uint8_t)z;
        mismatches += dfa_ok(b, 3) != ref_utf8(b, 3);
      }
    }
  }
  /* Four bytes: every lead byte F0-F4 and C0-FF with all second bytes, and
   * a pseudo-random sample of the rest. */
  uint32_t seed = 12345;
  for (unsigned x = 0xc0; x < 256; x++) {
    for (unsigned y = 0; y < 256; y++) {
      for (int r = 0; r < 64; r++) {
        seed = seed * 1103515245u + 12345u;
        b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = (uint8_t)(0x80 | (seed >> 16 & 0x3f));
        b[3] = (uint8_t)(seed >> 8);
        if (r & 1) b[3] = (uint8_t)(0x80 | (b[3] & 0x3f));
        mismatches += dfa_ok(b, 4) != ref_utf8(b, 4);
      }
    }
  }
  CHECK_EQ(mismatches, 0);
  /* Long ASCII runs around a multi-byte character take the fast path. */
  char big[100];
  memset(big, 'a', sizeof big);
  memcpy(big + 37, "\xe2\x82\xac", 3);
  CHECK(dfa_ok(big, sizeof big));
  big[38] = 'a';
  CHECK(!dfa_ok(big, sizeof big));
}

/* ---- two engines ---------------------------------------------------------- */

typedef struct {
  tusk_ws_t *s, *c;
  log_t sl, cl;
} pair_t;

static void pair_open(pair_t *p, const tusk_ws_deflate_t *d, size_t max) {
  memset(p, 0, sizeof *p);
  p->s = make(TUSK_WS_SERVER, d, max, &p->sl);
  p->c = make(TUSK_WS_CLIENT, d, max, &p->cl);
}

static void pair_close(pair_t *p) {
  tusk_ws_destroy(p->s);
  tusk_ws_destroy(p->c);
  log_free(&p->sl);
  log_free(&p->cl);
}

static void test_pair(size_t step) {
  pair_t p;
  pair_open(&p, NULL, 0);
  CHECK(p.s != NULL && p.c != NULL);

  CHECK_EQ(tusk_ws_send(p.c, TUSK_WS_TEXT, "hello", 5), 0);
  /* A client's frames are masked: the payload does not appear in clear. */
  size_t ol;
  const uint8_t *o = tusk_ws_output(p.c, &ol);
  CHECK_EQ(ol, 2 + 4 + 5);
  CHECK(o[0] == 0x81 && o[1] == (0x80 | 5));
  CHECK(memmem(o, ol, "hello", 5) == NULL);
  CHECK_EQ(tusk_ws_send(p.c, TUSK_WS_BINARY, "\x00\x01\x02", 3), 0);
  CHECK_EQ(tusk_ws_send(p.c, TUSK_WS_TEXT, "", 0), 0);
  CHECK_EQ(pump(p.c, p.s, step), 0);
  CHECK_EQ(p.sl.n, 3);
  CHECK(p.sl.op[0] == TUSK_WS_TEXT && p.sl.len[0] == 5 && memcmp(p.sl.data[0], "hello", 5) == 0);
  CHECK(p.sl.op[1] == TUSK_WS_BINARY && p.sl.len[1] == 3 && memcmp(p.sl.data[1], "\x00\x01\x02", 3) == 0);
  CHECK(p.sl.op[2] == TUSK_WS_TEXT && p.sl.len[2] == 0);

  /* Server to client: unmasked. */
  CHECK_EQ(tusk_ws_send(p.s, TUSK_WS_TEXT, "\xe2\x82\xac", 3), 0);
  o = tusk_ws_output(p.s, &ol);
  CHECK(ol == 5 && o[0] == 0x81 && o[1] == 3 && memcmp(o + 2, "\xe2\x82\xac", 3) == 0);
  /* Large messages: 16-bit and 64-bit lengths. */
  size_t big = 300000;
  char *bb = malloc(big);
  for (size_t i = 0; i < big; i++) bb[i] = (char)('a' + i % 26);
  CHECK_EQ(tusk_ws_send(p.s, TUSK_WS_BINARY, bb, 1000), 0);
  CHECK_EQ(tusk_ws_send(p.s, TUSK_WS_BINARY, bb, big), 0);
  CHECK_EQ(tusk_ws_send(p.c, TUSK_WS_TEXT, bb, big), 0);
  CHECK_EQ(pump(p.s, p.c, step ? step * 97 : 0), 0);
  CHECK_EQ(p.cl.n, 3);
  CHECK(p.cl.len[0] == 3 && memcmp(p.cl.data[0], "\xe2\x82\xac", 3) == 0);
  CHECK(p.cl.len[1] == 1000 && memcmp(p.cl.data[1], bb, 1000) == 0);
  CHECK(p.cl.len[2] == big && memcmp(p.cl.data[2], bb, big) == 0);
  CHECK_EQ(p.sl.n, 4);
  CHECK(p.sl.op[3] == TUSK_WS_TEXT && p.sl.len[3] == big && memcmp(p.sl.data[3], bb, big) == 0);
  free(bb);

  /* Fragmented, with a ping between fragments and a character split
   * across fragments. */
  CHECK_EQ(tusk_ws_send_fragment(p.c, TUSK_WS_TEXT, "frag\xe2\x82", 6, 0), 0);
  CHECK_EQ(tusk_ws_send(p.c, TUSK_WS_TEXT, "x", 1), -EINVAL); /* a message is open */
  CHECK_EQ(tusk_ws_send_fragment(p.c, TUSK_WS_BINARY, "x", 1, 0), -EINVAL);
  CHECK_EQ(tusk_ws_ping(p.c, "p1", 2), 0);
  CHECK_EQ(tusk_ws_send_fragment(p.c, TUSK_WS_TEXT, "\xac", 1, 0), 0);
  CHECK_EQ(tusk_ws_send_fragment(p.c, TUSK_WS_TEXT, "", 0, 0), 0);
  CHECK_EQ(tusk_ws_send_fragment(p.c, TUSK_WS_TEXT, "ment", 4, 1), 0);
  CHECK_EQ(pump(p.c, p.s, step), 0);
  CHECK_EQ(p.sl.n, 5);
  CHECK(p.sl.op[4] == TUSK_WS_TEXT && strcmp(p.sl.data[4], "frag\xe2\x82\xacment") == 0);
  CHECK_EQ(p.sl.pings, 1);
  CHECK(p.sl.ping_len == 2 && memcmp(p.sl.ping, "p1", 2) == 0);
  CHECK_EQ(p.cl.pongs, 1); /* answered automatically */
  CHECK(p.cl.pong_len == 2 && memcmp(p.cl.pong, "p1", 2) == 0);
  CHECK_EQ(tusk_ws_pong(p.s, "u", 1), 0);
  CHECK_EQ(tusk_ws_ping(p.s, "", 0), 0);
  CHECK_EQ(pump(p.s, p.c, step), 0);
  CHECK_EQ(p.cl.pongs, 2);
  CHECK_EQ(p.cl.pings, 1);
  CHECK_EQ(p.sl.pongs, 1);
  char p125[125];
  memset(p125, 'p', sizeof p125);
  CHECK_EQ(tusk_ws_ping(p.c, p125, 125), 0);
  CHECK_EQ(tusk_ws_ping(p.c, p125, 126), -EINVAL);
  CHECK_EQ(tusk_ws_pong(p.c, p125, 126), -EINVAL);
  CHECK_EQ(pump(p.c, p.s, step), 0);
  CHECK(p.cl.pong_len == 125);

  /* Closing handshake started by the server. */
  CHECK(!tusk_ws_done(p.s) && !tusk_ws_done(p.c));
  CHECK_EQ(tusk_ws_close(p.s, 1000, "bye", 3), 0);
  CHECK_EQ(tusk_ws_close_sent(p.s), 1000);
  CHECK_EQ(tusk_ws_send(p.s, TUSK_WS_TEXT, "late", 4), TUSK_ECLOSED);
  CHECK_EQ(tusk_ws_ping(p.s, "", 0), TUSK_ECLOSED);
  CHECK_EQ(tusk_ws_close(p.s, 1000, "", 0), TUSK_ECLOSED);
  /* The client still sends before it reads the close: delivered. */
  CHECK_EQ(tusk_ws_send(p.c, TUSK_WS_TEXT, "last", 4), 0);
  CHECK_EQ(pump(p.s, p.c, step), 0);
  CHECK_EQ(p.cl.closes, 1);
  CHECK_EQ(p.cl.close_code, 1000);
  CHECK(p.cl.reason_len == 3 && memcmp(p.cl.reason, "bye", 3) == 0);
  CHECK_EQ(p.sl.closes, 1);
  CHECK_EQ(p.sl.close_code, 1000);
  CHECK_EQ(p.sl.n, 6);
  CHECK(strcmp(p.sl.data[5], "last") == 0);
  CHECK(tusk_ws_done(p.s) && tusk_ws_done(p.c));
  CHECK_EQ(tusk_ws_close_received(p.s), 1000);
  CHECK_EQ(tusk_ws_close_received(p.c), 1000);
  CHECK_EQ(tusk_ws_close_sent(p.c), 1000);
  /* Input after the close is discarded. */
  CHECK_EQ(tusk_ws_feed(p.s, "\x81\x85", 2), 0);
  CHECK_EQ(tusk_ws_output_len(p.s), 0);
  pair_close(&p);

  /* Closed by the client without a code; the echo carries none either. */
  pair_open(&p, NULL, 0);
  CHECK_EQ(tusk_ws_close(p.c, 0, "x", 1), -EINVAL);
  CHECK_EQ(tusk_ws_close(p.c, 1005, "", 0), -EINVAL);
  CHECK_EQ(tusk_ws_close(p.c, 1000, "\xff", 1), -EINVAL);
  char r124[124];
  memset(r124, 'r', sizeof r124);
  CHECK_EQ(tusk_ws_close(p.c, 1000, r124, 124), -EINVAL);
  CHECK_EQ(tusk_ws_close(p.c, 0, NULL, 0), 0);
  CHECK_EQ(tusk_ws_close_sent(p.c), TUSK_WS_NO_STATUS);
  CHECK_EQ(pump(p.c, p.s, step), 0);
  CHECK_EQ(p.sl.close_code, TUSK_WS_NO_STATUS);
  CHECK_EQ(p.cl.close_code, TUSK_WS_NO_STATUS);
  CHECK(tusk_ws_done(p.s) && tusk_ws_done(p.c));
  pair_close(&p);

  /* An echo server: callbacks may send. */
  pair_open(&p, NULL, 0);
  p.sl.echo = p.s;
  for (int i = 0; i < 10; i++) CHECK_EQ(tusk_ws_send(p.c, TUSK_WS_TEXT, "echo", 4), 0);
  CHECK_EQ(pump(p.c, p.s, step), 0);
  CHECK_EQ(p.cl.n, 10);
  CHECK(p.cl.n == 10 && strcmp(p.cl.data[9], "echo") == 0);
  CHECK_EQ(tusk_ws_close(p.c, 4000, r124, 123), 0);
  CHECK_EQ(pump(p.c, p.s, step), 0);
  CHECK(p.sl.close_code == 4000 && p.sl.reason_len == 123);
  pair_close(&p);
}

/* ---- compression ----------------------------------------------------------- */

/* Negotiates as a real client and server would, then opens the pair. */
static void pair_open_pmd(pair_t *p, const tusk_ws_deflate_t *cpref, const tusk_ws_deflate_t *spref) {
  char offer[TUSK_WS_EXT_MAX], resp[TUSK_WS_EXT_MAX];
  tusk_ws_deflate_t sd, cd;
  tusk_ws_deflate_offer(cpref, offer, sizeof offer);
  CHECK_EQ(tusk_ws_deflate_negotiate(offer, strlen(offer), spref, &sd, resp, sizeof resp), 1);
  CHECK_EQ(tusk_ws_deflate_confirm(resp, strlen(resp), cpref, &cd), 1);
  memset(p, 0, sizeof *p);
  p->s = make(TUSK_WS_SERVER, &sd, 0, &p->sl);
  p->c = make(TUSK_WS_CLIENT, &cd, 0, &p->cl);
}

static void test_deflate_pair(const tusk_ws_deflate_t *cpref, const tusk_ws_deflate_t *spref,
                              size_t step) {
  pair_t p;
  pair_open_pmd(&p, cpref, spref);
  CHECK(p.s != NULL && p.c != NULL);
  /* Compressible text of several sizes, both ways, twice. */
  size_t sizes[] = {0, 1, 5, 200, 5000, 70000, 300000};
  char *text = malloc(300000 + 7);
  uint32_t seed = 7;
  for (size_t i = 0; i < 300000 + 7; i++) {
    seed = seed * 1103515245u + 12345u;
    text[i] = "the quick brown fox jumps over the lazy dog "[(seed >> 16) % 44];
  }
  int sent = 0;
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < TUSK_ARRAY_SIZE(sizes); i++) {
      CHECK_EQ(tusk_ws_send(p.s, TUSK_WS_TEXT, text, sizes[i]), 0);
      CHECK_EQ(tusk_ws_send(p.c, TUSK_WS_BINARY, text + 7, sizes[i]), 0);
      sent++;
    }
  }
  size_t ol;
  const uint8_t *o = tusk_ws_output(p.s, &ol);
  CHECK(ol > 0 && (o[0] & 0x40)); /* RSV1: compressed */
  size_t total = 0;
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(sizes); i++) total += 2 * sizes[i];
  CHECK(ol < total * 3 / 4); /* it did compress */
  CHECK_EQ(pump(p.s, p.c, step), 0);
  CHECK_EQ(p.cl.n, sent);
  CHECK_EQ(p.sl.n, sent);
  int same = 1;
  for (int k = 0; k < sent && k < LOG_MAX; k++) {
    size_t n = sizes[k % TUSK_ARRAY_SIZE(sizes)];
    if (p.cl.op[k] != TUSK_WS_TEXT || p.cl.len[k] != n || memcmp(p.cl.data[k], text, n) != 0) same = 0;
    if (p.sl.op[k] != TUSK_WS_BINARY || p.sl.len[k] != n || memcmp(p.sl.data[k], text + 7, n) != 0)
      same = 0;
  }
  CHECK(same);
  /* Fragmented and compressed, with a control frame in between. */
  CHECK_EQ(tusk_ws_send_fragment(p.c, TUSK_WS_TEXT, text, 1000, 0), 0);
  CHECK_EQ(tusk_ws_ping(p.c, "mid", 3), 0);
  CHECK_EQ(tusk_ws_send_fragment(p.c, TUSK_WS_TEXT, text + 1000, 0, 0), 0);
  CHECK_EQ(tusk_ws_send_fragment(p.c, TUSK_WS_TEXT, text + 1000, 3000, 1), 0);
  CHECK_EQ(tusk_ws_send_fragment(p.s, TUSK_WS_BINARY, text, 10, 0), 0);
  CHECK_EQ(tusk_ws_send_fragment(p.s, TUSK_WS_BINARY, NULL, 0, 1), 0);
  CHECK_EQ(pump(p.c, p.s, step), 0);
  CHECK_EQ(p.sl.n, sent + 1);
  CHECK(p.sl.len[sent] == 4000 && memcmp(p.sl.data[sent], text, 4000) == 0);
  CHECK_EQ(p.cl.n, sent + 1);
  CHECK(p.cl.len[sent] == 10 && memcmp(p.cl.data[sent], text, 10) == 0);
  CHECK_EQ(p.sl.pings, 1);
  /* And the close still works. */
  CHECK_EQ(tusk_ws_close(p.c, 1001, "", 0), 0);
  CHECK_EQ(pump(p.c, p.s, step), 0);
  CHECK(tusk_ws_done(p.s) && tusk_ws_done(p.c));
  free(text);
  pair_close(&p);
}

static void test_deflate(void) {
  tusk_ws_deflate_t none = {0};
  tusk_ws_deflate_t nct = {0, 1, 1, 0, 0};
  tusk_ws_deflate_t small = {0, 0, 0, 9, 10};
  tusk_ws_deflate_t snct = {0, 1, 0, 0, 0};
  test_deflate_pair(&none, &none, 0);   /* context takeover both ways */
  test_deflate_pair(&none, &none, 7);
  test_deflate_pair(&nct, &none, 0);    /* the client asks for no takeover */
  test_deflate_pair(&none, &nct, 1000); /* the server imposes it */
  test_deflate_pair(&small, &none, 0);  /* small windows */
  test_deflate_pair(&none, &small, 0);
  test_deflate_pair(&snct, &small, 3);

  /* A 256-byte server window: the server sends uncompressed, the client
   * still compresses. */
  tusk_ws_deflate_t w8 = {0, 0, 0, 8, 0};
  pair_t p;
  pair_open_pmd(&p, &w8, &none);
  CHECK_EQ(tusk_ws_send(p.s, TUSK_WS_TEXT, "Hello", 5), 0);
  size_t ol;
  const uint8_t *o = tusk_ws_output(p.s, &ol);
  CHECK(ol == 7 && o[0] == 0x81);
  CHECK_EQ(tusk_ws_send(p.c, TUSK_WS_TEXT, "Hello", 5), 0);
  o = tusk_ws_output(p.c, &ol);
  CHECK(o[0] == 0xc1);
  CHECK_EQ(pump(p.c, p.s, 0), 0);
  CHECK(p.sl.n == 1 && p.cl.n == 1 && strcmp(p.sl.data[0], "Hello") == 0);
  pair_close(&p);

  /* deflate_min: short messages go uncompressed. */
  tusk_ws_deflate_t on = {1, 0, 0, 0, 0};
  tusk_ws_config_t c = {TUSK_WS_SERVER, 0, on, 1, 1, 6};
  tusk_ws_t *s = tusk_ws_create(&c, NULL, NULL);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_TEXT, "Hello", 5), 0);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_TEXT, "Hello!", 6), 0);
  o = tusk_ws_output(s, &ol);
  CHECK(o[0] == 0x81 && o[7] == 0xc1);
  tusk_ws_destroy(s);

  /* Bad configurations. */
  tusk_ws_deflate_t bad = {1, 0, 0, 7, 0};
  tusk_ws_config_t bc = {TUSK_WS_SERVER, 0, bad, 0, 0, 0};
  CHECK(tusk_ws_create(&bc, NULL, NULL) == NULL);
  bc.deflate.server_max_window_bits = 16;
  CHECK(tusk_ws_create(&bc, NULL, NULL) == NULL);
  bc.deflate.server_max_window_bits = 0;
  bc.deflate_level = 10;
  CHECK(tusk_ws_create(&bc, NULL, NULL) == NULL);
  bc.deflate_level = 0;
  bc.deflate_mem_level = -1;
  CHECK(tusk_ws_create(&bc, NULL, NULL) == NULL);
  bc.deflate_mem_level = 0;
  bc.role = 7;
  CHECK(tusk_ws_create(&bc, NULL, NULL) == NULL);
  tusk_ws_destroy(NULL);
}

/* RFC 7692 7.2.3: the example frames, received by a client and produced by
 * a server. */
static void test_rfc7692(void) {
  tusk_ws_deflate_t on = {1, 0, 0, 0, 0};
  static const uint8_t hello[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  static const uint8_t hello2[] = {0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00};
  static const uint8_t frag[] = {0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00};
  static const uint8_t stored[] = {0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                                   0x65, 0x6c, 0x6c, 0x6f, 0x00};
  static const uint8_t bfinal[] = {0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
  static const uint8_t empty[] = {0xc1, 0x01, 0x00};
  static const uint8_t plain[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
  struct {
    const uint8_t *b;
    size_t n;
  } in[] = {{hello, sizeof hello}, {hello2, sizeof hello2}, {frag, sizeof frag},
            {stored, sizeof stored}, {bfinal, sizeof bfinal}, {hello, sizeof hello},
            {plain, sizeof plain}, {empty, sizeof empty}};
  size_t steps[] = {0, 1, 3};
  for (size_t s = 0; s < TUSK_ARRAY_SIZE(steps); s++) {
    log_t l = {0};
    tusk_ws_t *c = make(TUSK_WS_CLIENT, &on, 0, &l);
    int rc = 0;
    for (size_t i = 0; i < TUSK_ARRAY_SIZE(in); i++) rc |= feed(c, in[i].b, in[i].n, steps[s]);
    CHECK_EQ(rc, 0);
    CHECK_EQ(l.n, (int)TUSK_ARRAY_SIZE(in));
    int all = 1;
    for (int i = 0; i < l.n && i < 7; i++) all &= l.len[i] == 5 && memcmp(l.data[i], "Hello", 5) == 0;
    CHECK(all);
    CHECK(l.n == 8 && l.len[7] == 0);
    CHECK_EQ(tusk_ws_output_len(c), 0);
    tusk_ws_destroy(c);
    log_free(&l);
  }

  /* The server compresses "Hello" to the RFC's bytes; with context
   * takeover the second one refers back to the first. */
  tusk_ws_t *s = make(TUSK_WS_SERVER, &on, 0, NULL);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_TEXT, "Hello", 5), 0);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_TEXT, "Hello", 5), 0);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_TEXT, "", 0), 0);
  size_t ol;
  const uint8_t *o = tusk_ws_output(s, &ol);
  CHECK_EQ(ol, sizeof hello + sizeof hello2 + 3);
  CHECK(ol >= sizeof hello && memcmp(o, hello, sizeof hello) == 0);
  CHECK(ol >= sizeof hello + sizeof hello2 && memcmp(o + sizeof hello, hello2, sizeof hello2) == 0);
  tusk_ws_destroy(s);
  /* Without context takeover each one is compressed alone. */
  tusk_ws_deflate_t nct = {1, 1, 0, 0, 0};
  s = make(TUSK_WS_SERVER, &nct, 0, NULL);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_TEXT, "Hello", 5), 0);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_TEXT, "Hello", 5), 0);
  o = tusk_ws_output(s, &ol);
  CHECK(ol == 2 * sizeof hello && memcmp(o, hello, sizeof hello) == 0 &&
        memcmp(o + sizeof hello, hello, sizeof hello) == 0);
  tusk_ws_destroy(s);
  /* An empty message compresses to the single byte 00. */
  s = make(TUSK_WS_SERVER, &nct, 0, NULL);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_BINARY, "", 0), 0);
  o = tusk_ws_output(s, &ol);
  CHECK(ol == 3 && o[0] == 0xc2 && o[1] == 1 && o[2] == 0);
  tusk_ws_destroy(s);
}

/* ---- failures ----------------------------------------------------------------- */

typedef struct {
  const char *name;
  tusk_ws_role_t role;
  int pmd;
  size_t max;
  uint8_t in[512];
  size_t len;
  int rc, code;
} bad_case_t;

static void run_bad(const bad_case_t *b) {
  tusk_ws_deflate_t on = {1, 0, 0, 0, 0};
  size_t steps[] = {0, 1, 2, 5};
  for (size_t s = 0; s < TUSK_ARRAY_SIZE(steps); s++) {
    log_t l = {0};
    tusk_ws_t *ws = make(b->role, b->pmd ? &on : NULL, b->max, &l);
    int rc = feed(ws, b->in, b->len, steps[s]);
    int n = 0, code = out_close_code(ws, &n);
    if (rc != b->rc || code != b->code || n != 1)
      fprintf(stderr, "case %s (step %zu): rc %d code %d closes %d\n", b->name, steps[s], rc, code, n);
    CHECK_EQ(rc, b->rc);
    CHECK_EQ(code, b->code);
    CHECK_EQ(n, 1);
    CHECK(tusk_ws_done(ws));
    CHECK_EQ(tusk_ws_close_sent(ws), b->code);
    CHECK_EQ(tusk_ws_feed(ws, "\x81", 1), b->rc); /* stays failed */
    CHECK_EQ(tusk_ws_send(ws, TUSK_WS_TEXT, "x", 1), TUSK_ECLOSED);
    CHECK_EQ(tusk_ws_close(ws, 1000, "", 0), TUSK_ECLOSED);
    CHECK_EQ(l.closes, 0);
    tusk_ws_destroy(ws);
    log_free(&l);
  }
}

#define M 1 /* masked */
static void test_errors(void) {
  static bad_case_t c;
  size_t n;
  uint8_t p[300];
  memset(p, 'a', sizeof p);

#define BAD(nm, rl, pm, mx, r, cd)   \
  do {                               \
    c.name = nm, c.role = rl, c.pmd = pm, c.max = mx, c.rc = r, c.code = cd; \
    c.len = n;                       \
    run_bad(&c);                     \
  } while (0)

  n = mkframe(c.in, 1, 0, 3, M, "x", 1);
  BAD("opcode 3", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 0, 7, M, "x", 1);
  BAD("opcode 7", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 0, 0xb, M, "x", 1);
  BAD("opcode B", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 0, 0xf, M, "", 0);
  BAD("opcode F", TUSK_WS_SERVER, 1, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 4, 1, M, "x", 1);
  BAD("RSV1 without deflate", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 2, 1, M, "x", 1);
  BAD("RSV2", TUSK_WS_SERVER, 1, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 1, 2, M, "x", 1);
  BAD("RSV3", TUSK_WS_SERVER, 1, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 0, 0, 1, M, "a", 1);
  n += mkframe(c.in + n, 1, 4, 0, M, "b", 1);
  BAD("RSV1 on a continuation", TUSK_WS_SERVER, 1, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 4, 9, M, "", 0);
  BAD("RSV1 on a ping", TUSK_WS_SERVER, 1, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 0, 0, 9, M, "p", 1);
  BAD("fragmented ping", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 0, 0, 8, M, "", 0);
  BAD("fragmented close", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 0, 9, M, p, 126);
  BAD("ping of 126 bytes", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 0, 10, M, p, 200);
  BAD("pong of 200 bytes", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 0, 1, 0, "x", 1);
  BAD("unmasked to a server", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 0, 9, 0, "", 0);
  BAD("unmasked ping to a server", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 0, 1, M, "x", 1);
  BAD("masked to a client", TUSK_WS_CLIENT, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 0, 0, M, "x", 1);
  BAD("continuation without start", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 1, 0, 1, M, "x", 1);
  n += mkframe(c.in + n, 1, 0, 0, M, "y", 1);
  BAD("continuation after a whole message", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 0, 0, 1, M, "x", 1);
  n += mkframe(c.in + n, 1, 0, 2, M, "y", 1);
  BAD("new message while fragmented", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  n = mkframe(c.in, 0, 4, 1, M, "\x00", 1);
  n += mkframe(c.in + n, 1, 4, 1, M, "\x00", 1);
  BAD("new compressed message while fragmented", TUSK_WS_SERVER, 1, 0, TUSK_EPROTO, 1002);
  /* Lengths wslay refuses: not minimal, top bit set. */
  n = 0;
  memcpy(c.in, "\x81\xfe\x00\x05\x00\x00\x00\x00hello", 13);
  n = 13;
  BAD("16-bit length for 5 bytes", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  memcpy(c.in, "\x81\xff\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00hello", 19);
  n = 19;
  BAD("64-bit length for 5 bytes", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  memcpy(c.in, "\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 14);
  n = 14;
  BAD("64-bit length with the top bit", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);

  /* UTF-8. */
  n = mkframe(c.in, 1, 0, 1, M, "ab\xff", 3);
  BAD("text with FF", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1007);
  n = mkframe(c.in, 1, 0, 1, M, "\xed\xa0\x80", 3);
  BAD("text with a surrogate", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1007);
  n = mkframe(c.in, 1, 0, 1, M, "\xc0\xaf", 2);
  BAD("text overlong", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1007);
  n = mkframe(c.in, 1, 0, 1, M, "\xf4\x90\x80\x80", 4);
  BAD("text above U+10FFFF", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1007);
  n = mkframe(c.in, 1, 0, 1, M, "ok\xe2\x82", 4);
  BAD("text truncated at the end", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1007);
  n = mkframe(c.in, 0, 0, 1, M, "ok\xe2", 3);
  n += mkframe(c.in + n, 1, 0, 0, M, "\x82", 1);
  BAD("text truncated across fragments", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1007);
  n = mkframe(c.in, 1, 0, 1, 0, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", 14);
  BAD("client: text with a surrogate", TUSK_WS_CLIENT, 0, 0, TUSK_EPROTO, 1007);
  n = mkframe(c.in, 1, 0, 8, M, "\x03\xe8\xff", 3);
  BAD("close reason not UTF-8", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1007);
  /* Compressed text whose inflated bytes are not UTF-8, and garbage. */
  n = mkframe(c.in, 1, 4, 1, M, "\x00\x02\x00\xfd\xff\xc3\x28", 7); /* stored block "\xc3\x28" */
  BAD("compressed text not UTF-8", TUSK_WS_SERVER, 1, 0, TUSK_EPROTO, 1007);
  n = mkframe(c.in, 1, 4, 2, M, "\xff\xff\xff", 3);
  BAD("not deflate", TUSK_WS_SERVER, 1, 0, TUSK_EPROTO, 1007);

  /* Close payloads. */
  n = mkframe(c.in, 1, 0, 8, M, "\x03", 1);
  BAD("close of 1 byte", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  int invalid[] = {0, 1, 999, 1004, 1005, 1006, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(invalid); i++) {
    uint8_t cc[2] = {(uint8_t)(invalid[i] >> 8), (uint8_t)invalid[i]};
    n = mkframe(c.in, 1, 0, 8, M, cc, 2);
    BAD("invalid close code", TUSK_WS_SERVER, 0, 0, TUSK_EPROTO, 1002);
  }

  /* Limits: the header alone is enough to refuse. */
  n = mkframe(c.in, 1, 0, 2, M, p, 17);
  BAD("17 bytes over a 16-byte limit", TUSK_WS_SERVER, 0, 16, TUSK_ELIMIT, 1009);
  n = 7; /* the header and one byte: wslay shows a header with its first payload byte */
  BAD("the header of 17 bytes over 16", TUSK_WS_SERVER, 0, 16, TUSK_ELIMIT, 1009);
  n = mkframe(c.in, 0, 0, 1, M, p, 10);
  n += mkframe(c.in + n, 0, 0, 0, M, p, 6);
  n += mkframe(c.in + n, 1, 0, 0, M, p, 1);
  BAD("fragments over the limit", TUSK_WS_SERVER, 0, 16, TUSK_ELIMIT, 1009);
#undef BAD
}

/* Failing fast: the engine fails on the first bad byte, before the frame
 * or the message is complete. */
static void test_fail_fast(void) {
  uint8_t in[1200];
  char pay[1000];
  memset(pay, 'a', sizeof pay);
  memcpy(pay + 10, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80", 15);
  size_t n = mkframe(in, 1, 0, 1, M, pay, sizeof pay);
  tusk_ws_t *s = make(TUSK_WS_SERVER, NULL, 0, NULL);
  /* header 8 bytes + 10 ASCII + 11 valid + F4 90 */
  CHECK_EQ(tusk_ws_feed(s, in, 8 + 10 + 11 + 1), 0);
  CHECK_EQ(tusk_ws_feed(s, in + 30, 1), TUSK_EPROTO);
  CHECK_EQ(out_close_code(s, NULL), 1007);
  tusk_ws_destroy(s);
  (void)n;

  /* In the first fragment of a message. */
  n = mkframe(in, 0, 0, 1, M, "ok\xc0", 3);
  s = make(TUSK_WS_SERVER, NULL, 0, NULL);
  CHECK_EQ(tusk_ws_feed(s, in, n), TUSK_EPROTO);
  CHECK_EQ(out_close_code(s, NULL), 1007);
  tusk_ws_destroy(s);

  /* In compressed text, as soon as the bad byte is inflated. */
  tusk_ws_deflate_t on = {1, 0, 0, 0, 0};
  n = mkframe(in, 0, 4, 1, M, "\x00\x02\x00\xfd\xff\xc3\x28", 7);
  s = make(TUSK_WS_SERVER, &on, 0, NULL);
  CHECK_EQ(tusk_ws_feed(s, in, n), TUSK_EPROTO);
  CHECK_EQ(out_close_code(s, NULL), 1007);
  tusk_ws_destroy(s);

  /* A valid character split across fragments is fine. */
  log_t l = {0};
  s = make(TUSK_WS_SERVER, NULL, 0, &l);
  n = mkframe(in, 0, 0, 1, M, "\xf0\x9f", 2);
  n += mkframe(in + n, 0, 0, 0, M, "\x98", 1);
  n += mkframe(in + n, 1, 0, 0, M, "\x80", 1);
  CHECK_EQ(feed(s, in, n, 1), 0);
  CHECK(l.n == 1 && strcmp(l.data[0], "\xf0\x9f\x98\x80") == 0);
  tusk_ws_destroy(s);
  log_free(&l);
}

/* Valid and unusual input that must not fail. */
static void test_accepts(void) {
  uint8_t in[600];
  size_t n = 0;
  log_t l = {0};
  tusk_ws_t *s = make(TUSK_WS_SERVER, NULL, 0, &l);
  int valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 3999, 4000, 4999};
  for (size_t i = 0; i < TUSK_ARRAY_SIZE(valid); i++) {
    log_t cl = {0};
    tusk_ws_t *x = make(TUSK_WS_SERVER, NULL, 0, &cl);
    uint8_t cc[4] = {(uint8_t)(valid[i] >> 8), (uint8_t)valid[i], 'o', 'k'};
    n = mkframe(in, 1, 0, 8, M, cc, 4);
    CHECK_EQ(tusk_ws_feed(x, in, n), 0);
    CHECK_EQ(cl.close_code, valid[i]);
    CHECK(cl.reason_len == 2 && memcmp(cl.reason, "ok", 2) == 0);
    CHECK_EQ(out_close_code(x, NULL), valid[i]); /* echoed */
    CHECK(tusk_ws_done(x));
    tusk_ws_destroy(x);
    log_free(&cl);
  }
  /* Ping with 125 bytes between fragments; empty frames; data after the
   * close in the same read is ignored. */
  char p125[125];
  memset(p125, 'z', sizeof p125);
  n = mkframe(in, 0, 0, 2, M, "", 0);
  n += mkframe(in + n, 1, 0, 9, M, p125, 125);
  n += mkframe(in + n, 0, 0, 0, M, "ab", 2);
  n += mkframe(in + n, 1, 0, 0, M, "", 0);
  n += mkframe(in + n, 1, 0, 8, M, "", 0);
  n += mkframe(in + n, 1, 0, 1, M, "after", 5);
  CHECK_EQ(feed(s, in, n, 1), 0);
  CHECK(l.n == 1 && l.op[0] == TUSK_WS_BINARY && l.len[0] == 2 && memcmp(l.data[0], "ab", 2) == 0);
  CHECK(l.pings == 1 && l.ping_len == 125);
  CHECK(l.closes == 1 && l.close_code == TUSK_WS_NO_STATUS);
  int closes = 0;
  CHECK_EQ(out_close_code(s, &closes), TUSK_WS_NO_STATUS);
  CHECK_EQ(closes, 1);
  tusk_ws_destroy(s);
  log_free(&l);

  /* A close received after ours does not trigger a second close. */
  s = make(TUSK_WS_SERVER, NULL, 0, &l);
  CHECK_EQ(tusk_ws_close(s, 1001, "going", 5), 0);
  n = mkframe(in, 1, 0, 1, M, "still", 5);
  n += mkframe(in + n, 1, 0, 9, M, "", 0); /* no pong after our close */
  n += mkframe(in + n, 1, 0, 8, M, "\x03\xe8", 2);
  CHECK_EQ(tusk_ws_feed(s, in, n), 0);
  CHECK(l.n == 1 && l.pings == 1 && l.close_code == 1000);
  CHECK_EQ(out_close_code(s, &closes), 1001);
  CHECK_EQ(closes, 1);
  size_t ol;
  tusk_ws_output(s, &ol);
  CHECK_EQ(ol, 2 + 2 + 5); /* just our close */
  CHECK(tusk_ws_done(s));
  tusk_ws_destroy(s);
  log_free(&l);

  /* Exactly at the limit. */
  s = make(TUSK_WS_SERVER, NULL, 16, &l);
  uint8_t p[17];
  memset(p, 'q', sizeof p);
  n = mkframe(in, 0, 0, 2, M, p, 8);
  n += mkframe(in + n, 1, 0, 0, M, p, 8);
  CHECK_EQ(tusk_ws_feed(s, in, n), 0);
  CHECK(l.n == 1 && l.len[0] == 16);
  tusk_ws_destroy(s);
  log_free(&l);
}

/* The default limit (1 MiB) and the decompressed limit. */
static void test_limits(void) {
  size_t big = TUSK_WS_MAX_MESSAGE_DEFAULT;
  uint8_t *buf = malloc(big + 32);
  char *pay = calloc(1, big + 1);
  log_t l = {0};
  tusk_ws_t *s = make(TUSK_WS_SERVER, NULL, 0, &l);
  size_t n = mkframe(buf, 1, 0, 2, M, pay, big);
  CHECK_EQ(feed(s, buf, n, 65536), 0);
  CHECK(l.n == 1 && l.len[0] == big);
  n = mkframe(buf, 1, 0, 2, M, pay, big + 1);
  CHECK_EQ(tusk_ws_feed(s, buf, 15), TUSK_ELIMIT); /* the header says enough */
  CHECK_EQ(out_close_code(s, NULL), 1009);
  tusk_ws_destroy(s);
  log_free(&l);

  /* A deflate bomb: 1 MiB of zeros compresses to ~1 KiB; the limit is
   * enforced on the inflated size, while inflating. */
  z_stream z;
  memset(&z, 0, sizeof z);
  deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  uint8_t *zout = malloc(big);
  z.next_in = (Bytef *)pay;
  z.avail_in = (uInt)big;
  z.next_out = zout;
  z.avail_out = (uInt)big;
  deflate(&z, Z_SYNC_FLUSH);
  size_t zlen = big - z.avail_out - 4;
  deflateEnd(&z);
  tusk_ws_deflate_t on = {1, 0, 0, 0, 0};
  s = make(TUSK_WS_SERVER, &on, 100000, &l);
  n = mkframe(buf, 1, 4, 2, M, zout, zlen);
  CHECK(zlen < 4096);
  CHECK_EQ(tusk_ws_feed(s, buf, n), TUSK_ELIMIT);
  CHECK_EQ(out_close_code(s, NULL), 1009);
  CHECK_EQ(l.n, 0);
  tusk_ws_destroy(s);
  /* The same with a limit that fits. */
  s = make(TUSK_WS_SERVER, &on, 0, &l);
  CHECK_EQ(feed(s, buf, n, 100), 0);
  CHECK(l.n == 1 && l.len[0] == big);
  tusk_ws_destroy(s);
  log_free(&l);
  /* Compressed payload far above what the limit could need is refused
   * from the header. */
  s = make(TUSK_WS_SERVER, &on, 1000, &l);
  n = mkframe(buf, 1, 4, 2, M, pay, 2000);
  CHECK_EQ(tusk_ws_feed(s, buf, 9), TUSK_ELIMIT);
  tusk_ws_destroy(s);
  log_free(&l);
  free(zout);
  free(buf);
  free(pay);
}

/* ---- output, misuse -------------------------------------------------------- */

static int reentered;
static tusk_ws_t *reenter_self;
static void on_message_reenter(void *ud, int op, const void *data, size_t len) {
  reentered = tusk_ws_feed(reenter_self, "x", 1);
}

static void test_output_api(void) {
  tusk_ws_t *s = make(TUSK_WS_SERVER, NULL, 0, NULL);
  size_t ol;
  CHECK(tusk_ws_output(s, &ol) == NULL && ol == 0);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_TEXT, "abc", 3), 0);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_TEXT, "def", 3), 0);
  CHECK_EQ(tusk_ws_output_len(s), 10);
  tusk_ws_output_consume(s, 4);
  const char *o = tusk_ws_output(s, &ol);
  CHECK(ol == 6 && memcmp(o + 1, "\x81\x03" "def", 5) == 0);
  tusk_buf_t dst;
  tusk_buf_init(&dst);
  tusk_buf_append(&dst, "X", 1);
  CHECK_EQ(tusk_ws_output_take(s, &dst), 0);
  CHECK(dst.len == 7 && memcmp(dst.data + 2, "\x81\x03" "def", 5) == 0);
  CHECK_EQ(tusk_ws_output_len(s), 0);
  tusk_buf_reset(&dst);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_BINARY, "g", 1), 0);
  const char *before = tusk_ws_output(s, &ol);
  CHECK_EQ(tusk_ws_output_take(s, &dst), 0);
  CHECK(dst.data == before && dst.len == 3); /* swapped, not copied */
  CHECK_EQ(tusk_ws_output_take(s, &dst), 0);
  CHECK_EQ(dst.len, 3);
  tusk_ws_output_consume(s, 100);
  tusk_buf_dispose(&dst);

  CHECK_EQ(tusk_ws_send(s, TUSK_WS_PING, "x", 1), -EINVAL);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_TEXT, "\xff", 1), -EINVAL);
  CHECK_EQ(tusk_ws_send(s, TUSK_WS_TEXT, "\xe2\x82", 2), -EINVAL);
  CHECK_EQ(tusk_ws_send_fragment(s, TUSK_WS_TEXT, "\xe2\x82", 2, 1), -EINVAL);
  CHECK_EQ(tusk_ws_send_fragment(s, TUSK_WS_CONT, "a", 1, 1), -EINVAL);
  CHECK_EQ(tusk_ws_send_fragment(s, TUSK_WS_TEXT, "\xff", 1, 0), -EINVAL);
  CHECK_EQ(tusk_ws_output_len(s), 0); /* nothing queued by the failures */
  CHECK_EQ(tusk_ws_close(s, 999, "", 0), -EINVAL);
  CHECK_EQ(tusk_ws_close(s, 1015, "", 0), -EINVAL);
  CHECK_EQ(tusk_ws_close(s, 2999, "", 0), -EINVAL);
  CHECK_EQ(tusk_ws_close(s, 5000, "", 0), -EINVAL);
  CHECK_EQ(tusk_ws_close(s, 1012, "", 0), 0);
  tusk_ws_destroy(s);

}

/* feed from a callback is refused and changes nothing. */
static void test_reentry(void) {
  tusk_ws_config_t cfg = {TUSK_WS_CLIENT, 0, {0}, 0, 0, 0};
  tusk_ws_callbacks_t cb = {on_message_reenter, NULL, NULL, NULL};
  reenter_self = tusk_ws_create(&cfg, &cb, NULL);
  uint8_t in[32];
  size_t n = mkframe(in, 1, 0, 1, 0, "hi", 2);
  n += mkframe(in + n, 1, 0, 1, 0, "again", 5);
  reentered = 1;
  CHECK_EQ(tusk_ws_feed(reenter_self, in, n), 0);
  CHECK_EQ(reentered, -EINVAL);
  CHECK(!tusk_ws_done(reenter_self));
  tusk_ws_destroy(reenter_self);
}

/* ---- memory ------------------------------------------------------------------ */

#ifndef UNDER_ASAN
#define NCONN 1000

/* Heap bytes each of NCONN server engines keeps once idle, after one
 * message each way (and one compressed message each way with deflate). */
static long idle_bytes(const tusk_ws_deflate_t *d, int partial) {
  static tusk_ws_t *conns[NCONN];
  uint8_t in[64];
  size_t n = mkframe(in, 1, 0, 1, M, "hello", 5);
  uint8_t zin[64];
  size_t zn = mkframe(zin, 1, 4, 1, M, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7);
  malloc_trim(0);
  size_t base = mallinfo2().uordblks;
  for (int i = 0; i < NCONN; i++) {
    conns[i] = make(TUSK_WS_SERVER, d, 0, NULL);
    tusk_ws_feed(conns[i], in, n);
    if (d != NULL) tusk_ws_feed(conns[i], zin, zn);
    tusk_ws_send(conns[i], TUSK_WS_TEXT, "hello back, this is long enough to compress", 43);
    if (partial) tusk_ws_feed(conns[i], in, 3); /* a frame header in flight */
    tusk_ws_output_consume(conns[i], tusk_ws_output_len(conns[i]));
  }
  long per = (long)(mallinfo2().uordblks - base) / NCONN;
  for (int i = 0; i < NCONN; i++) tusk_ws_destroy(conns[i]);
  return per;
}

static ssize_t ev_recv(wslay_event_context_ptr c, uint8_t *b, size_t l, int f, void *u) { return -1; }
static ssize_t ev_send(wslay_event_context_ptr c, const uint8_t *b, size_t l, int f, void *u) {
  return (ssize_t)l;
}

#endif

static void test_memory(void) {
#ifdef UNDER_ASAN
  printf("memory: skipped under AddressSanitizer (mallinfo2 does not see its heap)\n");
#else
  /* What a wslay event context would cost, for the record. */
  static wslay_event_context_ptr ev[NCONN];
  struct wslay_event_callbacks ecb = {ev_recv, ev_send, NULL, NULL, NULL, NULL, NULL};
  size_t base = mallinfo2().uordblks;
  for (int i = 0; i < NCONN; i++) wslay_event_context_server_init(&ev[i], &ecb, NULL);
  long wslay_event = (long)(mallinfo2().uordblks - base) / NCONN;
  for (int i = 0; i < NCONN; i++) wslay_event_context_free(ev[i]);

  tusk_ws_deflate_t nct = {1, 1, 1, 0, 0};
  tusk_ws_deflate_t takeover = {1, 0, 0, 0, 0};
  tusk_ws_deflate_t takeover_small = {1, 0, 0, 10, 10};
  long plain = idle_bytes(NULL, 0);
  long pmd_nct = idle_bytes(&nct, 0);
  long pmd_take = idle_bytes(&takeover, 0);
  long pmd_small = idle_bytes(&takeover_small, 0);
  long in_frame = idle_bytes(NULL, 1);
  printf("memory per connection: idle %ld B, idle with permessage-deflate no_context_takeover %ld B,\n"
         "  with context takeover %ld B (windows 15) / %ld B (windows 10), mid-frame %ld B;\n"
         "  a wslay event context alone would be %ld B\n",
         plain, pmd_nct, pmd_take, pmd_small, in_frame, wslay_event);
  CHECK(plain > 0 && plain < 1024);
  CHECK(pmd_nct > 0 && pmd_nct < 1024);
  CHECK(pmd_take > pmd_nct);
  CHECK(in_frame > plain + 4000); /* wslay's frame context while a frame is partial */
#endif
}

int main(void) {
  test_handshake();
  test_origin();
  test_negotiate();
  test_offer_confirm();
  test_utf8();
  test_pair(0);
  test_pair(1);
  test_pair(3);
  test_deflate();
  test_rfc7692();
  test_errors();
  test_fail_fast();
  test_accepts();
  test_limits();
  test_output_api();
  test_reentry();
  test_memory();
  TUSK_CHECK_REPORT();
}
