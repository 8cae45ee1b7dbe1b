/* Fuzz target for the WebSocket engine, server role: the input is what a
 * client sends after the handshake. The first byte picks the configuration:
 *   bit 0     permessage-deflate negotiated
 *   bit 1     server_no_context_takeover     bit 2  client_no_context_takeover
 *   bit 3     small windows (server 9, client 10)
 *   bit 4     max_message 1024 instead of the default
 *   bits 5-7  how the rest is split into feed calls (all at once, 1, 2, 3,
 *             7, 64, 1000 bytes, or sizes taken from the input itself)
 * The server echoes every message it receives (odd lengths as two
 * fragments) and pings. Its output is then fed to a
 * client engine with the same parameters, which must accept all of it and
 * receive exactly the echoed messages: so everything the server writes
 * (echoes compressed with its deflater, pongs, its close) is checked to be
 * valid, and what it delivered is checked against a plain UTF-8 decoder. */
#undef NDEBUG /* the replay under CTest must check invariants in every build type */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "http/ws.h"

#define FIFO_MAX 4096

typedef struct {
  tusk_ws_t *ws;
  size_t max;
  uint64_t hash[FIFO_MAX];
  size_t len[FIFO_MAX];
  int op[FIFO_MAX];
  size_t head, tail; /* echoed, not yet seen by the client */
  int server_closes, client_closes, client_close_code;
} state_t;

static uint64_t fnv(const void *p, size_t n) {
  const uint8_t *b = p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

/* Plain UTF-8 decoder, independent of the engine's DFA. */
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

static void server_message(void *ud, int op, const void *data, size_t len) {
  state_t *st = ud;
  assert(op == TUSK_WS_TEXT || op == TUSK_WS_BINARY);
  assert(len <= st->max);
  if (op == TUSK_WS_TEXT) assert(ref_utf8(data, len));
  /* Odd lengths go back in two fragments (a character may be split), and
   * every message is followed by a ping with its first bytes. */
  int rc;
  if (len & 1) {
    rc = tusk_ws_send_fragment(st->ws, op, data, len / 2, 0);
    if (rc == 0) {
      rc = tusk_ws_send_fragment(st->ws, op, (const uint8_t *)data + len / 2, len - len / 2, 1);
      assert(rc == 0);
    }
  } else {
    rc = tusk_ws_send(st->ws, op, data, len);
  }
  if (rc == 0) assert(tusk_ws_ping(st->ws, data, TUSK_MIN(len, 125)) == 0);
  if (rc == 0) {
    assert(st->tail - st->head < FIFO_MAX);
    size_t i = st->tail++ % FIFO_MAX;
    st->hash[i] = fnv(data, len);
    st->len[i] = len;
    st->op[i] = op;
  } else {
    assert(rc == TUSK_ECLOSED && tusk_ws_close_sent(st->ws));
  }
}

static void server_close(void *ud, int code, const char *reason, size_t len) {
  state_t *st = ud;
  st->server_closes++;
  assert(code == TUSK_WS_NO_STATUS || (code >= 1000 && code <= 4999));
  assert(len <= 123 && ref_utf8((const uint8_t *)reason, len));
}

static void server_ping(void *ud, const void *data, size_t len) { assert(len <= 125); }

static void client_message(void *ud, int op, const void *data, size_t len) {
  state_t *st = ud;
  assert(st->head < st->tail);
  size_t i = st->head++ % FIFO_MAX;
  assert(st->op[i] == op && st->len[i] == len && st->hash[i] == fnv(data, len));
}

static void client_close(void *ud, int code, const char *reason, size_t len) {
  state_t *st = ud;
  st->client_closes++;
  st->client_close_code = code;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t cfgb = data[0];
  data++, size--;

  tusk_ws_config_t sc;
  memset(&sc, 0, sizeof sc);
  sc.role = TUSK_WS_SERVER;
  if (cfgb & 1) {
    sc.deflate.enabled = 1;
    sc.deflate.server_no_context_takeover = (cfgb >> 1) & 1;
    sc.deflate.client_no_context_takeover = (cfgb >> 2) & 1;
    if (cfgb & 8) {
      sc.deflate.server_max_window_bits = 9;
      sc.deflate.client_max_window_bits = 10;
    }
  }
  sc.max_message = (cfgb & 16) ? 1024 : 0;
  tusk_ws_config_t cc = sc;
  cc.role = TUSK_WS_CLIENT;

  static state_t st;
  memset(&st, 0, sizeof st);
  st.max = sc.max_message ? sc.max_message : TUSK_WS_MAX_MESSAGE_DEFAULT;
  tusk_ws_callbacks_t scb = {server_message, server_ping, NULL, server_close};
  tusk_ws_callbacks_t ccb = {client_message, NULL, NULL, client_close};
  tusk_ws_t *s = tusk_ws_create(&sc, &scb, &st);
  tusk_ws_t *c = tusk_ws_create(&cc, &ccb, &st);
  assert(s != NULL && c != NULL);
  st.ws = s;

  static const size_t steps[] = {0, 1, 2, 3, 7, 64, 1000, 0};
  size_t step = steps[cfgb >> 5];
  int from_input = (cfgb >> 5) == 7;
  int err = 0;
  size_t off = 0;
  while (off < size) {
    size_t n = step ? step : size - off;
    if (from_input) n = 1 + data[off] % 32;
    n = TUSK_MIN(n, size - off);
    int rc = tusk_ws_feed(s, data + off, n);
    off += n;
    if (err) {
      assert(rc == err); /* a failed engine stays failed */
      continue;
    }
    assert(rc == 0 || rc == TUSK_EPROTO || rc == TUSK_ELIMIT);
    if (rc != 0) {
      err = rc;
      assert(tusk_ws_done(s));
      /* Input after the peer's close is discarded, so the close queued is
       * the failure's. */
      int code = tusk_ws_close_sent(s);
      assert(!tusk_ws_close_received(s));
      if (rc == TUSK_ELIMIT) {
        assert(code == TUSK_WS_TOO_BIG);
      } else {
        assert(code == TUSK_WS_PROTOCOL_ERROR || code == TUSK_WS_INVALID_DATA);
      }
    }
    /* Drain like a connection would, in two pieces. */
    size_t ol;
    const void *o = tusk_ws_output(s, &ol);
    if (ol) {
      size_t half = ol / 2;
      assert(tusk_ws_feed(c, o, half) == 0);
      tusk_ws_output_consume(s, half);
      o = tusk_ws_output(s, &ol);
      assert(tusk_ws_feed(c, o, ol) == 0);
      tusk_ws_output_consume(s, ol);
    }
    assert(tusk_ws_output_len(s) == 0);
  }
  assert(st.server_closes <= 1);
  if (st.server_closes) assert(tusk_ws_done(s));
  /* Every echo arrived, and the server's close (if any) is what it says. */
  assert(st.head == st.tail);
  if (tusk_ws_close_sent(s)) {
    assert(st.client_closes == 1);
    assert(st.client_close_code == tusk_ws_close_sent(s));
  } else {
    assert(st.client_closes == 0 && !tusk_ws_done(s));
    assert(tusk_ws_close(s, TUSK_WS_GOING_AWAY, "bye", 3) == 0);
  }
  tusk_ws_destroy(s);
  tusk_ws_destroy(c);

  /* The validator on raw input, against the plain decoder. */
  assert((tusk_ws_utf8_check(0, data, size) == TUSK_WS_UTF8_ACCEPT) == ref_utf8(data, size));
  return 0;
}
