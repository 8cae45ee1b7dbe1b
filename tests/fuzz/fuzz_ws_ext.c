/* Fuzz target for the WebSocket handshake parsers: the input is a
 * Sec-WebSocket-Extensions value. The first byte picks the server's
 * preferences (and the client's offer for the confirm side). Invariants:
 * what the server answers is a value the client accepts as is, with the
 * same parameters; answers parse as offers again; nothing reads past the
 * value (the replay gives it an exact-size buffer). */
#undef NDEBUG /* the replay under CTest must check invariants in every build type */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "http/ws.h"

static int bits_ok(int b) { return b >= 8 && b <= 15; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t p = data[0];
  const char *v = (const char *)data + 1;
  size_t len = size - 1;
  static const int wins[4] = {0, 9, 12, 15};
  tusk_ws_deflate_t pref = {0, p & 1, (p >> 1) & 1, wins[(p >> 2) & 3], wins[(p >> 4) & 3]};

  tusk_ws_deflate_t out, back, again;
  char resp[TUSK_WS_EXT_MAX];
  int r = tusk_ws_deflate_negotiate(v, len, &pref, &out, resp, sizeof resp);
  assert(r == 0 || r == 1);
  if (r == 1) {
    assert(out.enabled && bits_ok(out.server_max_window_bits) && bits_ok(out.client_max_window_bits));
    if (pref.server_no_context_takeover) assert(out.server_no_context_takeover);
    if (pref.client_no_context_takeover) assert(out.client_no_context_takeover);
    if (pref.server_max_window_bits) assert(out.server_max_window_bits <= pref.server_max_window_bits);
    size_t rl = strlen(resp);
    assert(rl < TUSK_WS_EXT_MAX);
    /* A client that offered "client_max_window_bits" takes it as is. */
    tusk_ws_deflate_t none = {0};
    assert(tusk_ws_deflate_confirm(resp, rl, &none, &back) == 1);
    assert(memcmp(&back, &out, sizeof out) == 0);
    /* The answer is also a well-formed offer, accepted with the same
     * parameters by a server without preferences. */
    static const tusk_ws_deflate_t any = {0};
    char resp2[TUSK_WS_EXT_MAX];
    assert(tusk_ws_deflate_negotiate(resp, rl, &any, &again, resp2, sizeof resp2) == 1);
    assert(memcmp(&again, &out, sizeof out) == 0);
  } else {
    assert(!out.enabled && resp[0] == '\0');
  }

  /* The same bytes as a server's answer to our offer. */
  char offer[TUSK_WS_EXT_MAX];
  assert(tusk_ws_deflate_offer(&pref, offer, sizeof offer) == 0);
  r = tusk_ws_deflate_confirm(v, len, &pref, &back);
  assert(r == 0 || r == 1 || r == TUSK_EPROTO);
  if (r == 1) {
    assert(bits_ok(back.server_max_window_bits) && bits_ok(back.client_max_window_bits));
    if (pref.server_max_window_bits) assert(back.server_max_window_bits <= pref.server_max_window_bits);
    if (pref.client_max_window_bits) assert(back.client_max_window_bits <= pref.client_max_window_bits);
    if (pref.server_no_context_takeover) assert(back.server_no_context_takeover);
  }

  /* Keys: whatever passes the check has an accept value that checks. */
  if (tusk_ws_check_key(v, len) == 0) {
    char acc[TUSK_WS_ACCEPT_LEN + 1];
    assert(tusk_ws_accept_key(v, len, acc) == 0 && strlen(acc) == TUSK_WS_ACCEPT_LEN);
    assert(tusk_ws_check_accept(v, len, acc, TUSK_WS_ACCEPT_LEN) == 0);
  }
  (void)tusk_ws_check_version(v, len);

  /* Origin check: the value split at its first NUL (or in the middle)
   * into an allowed list and an Origin. Every origin is allowed by itself
   * and by "*"; an origin listed among others stays allowed; a list that
   * allows it keeps doing so with an unrelated exact entry added. */
  const char *nul = memchr(v, '\0', len);
  size_t ll = nul ? (size_t)(nul - v) : len / 2, ol = len - ll - (nul ? 1 : 0);
  const char *o = v + len - ol;
  int allowed = tusk_ws_origin_allowed(v, ll, o, ol);
  assert(allowed == 0 || allowed == 1);
  assert(tusk_ws_origin_allowed("*", 1, o, ol) == 1);
  assert(tusk_ws_origin_allowed(v, ll, NULL, 0) == 1);
  if (ol && !memchr(o, ',', ol) && !memchr(o, '\n', ol) && !memchr(o, '\r', ol) && !memchr(o, '*', ol) &&
      o[0] != ' ' && o[0] != '\t' && o[ol - 1] != ' ' && o[ol - 1] != '\t') {
    assert(tusk_ws_origin_allowed(o, ol, o, ol) == 1);
    char both[600];
    if (ll + ol + 2 < sizeof both) {
      memcpy(both, v, ll);
      both[ll] = '\n';
      memcpy(both + ll + 1, o, ol);
      assert(tusk_ws_origin_allowed(both, ll + 1 + ol, o, ol) == 1);
    }
  }
  int has_entry = 0;
  for (size_t i = 0; i < ll && !has_entry; i++) has_entry = !strchr(" \t\r\n,", v[i]) || v[i] == '\0';
  if (allowed && has_entry && ll + 40 < 600) {
    char more[600];
    memcpy(more, v, ll);
    memcpy(more + ll, ",https://unrelated.example", 26);
    assert(tusk_ws_origin_allowed(more, ll + 26, o, ol) == 1);
  }
  return 0;
}
