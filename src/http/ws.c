#include "http/ws.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <wslay/wslay.h>
#include <zlib.h>

#include "core/common.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define INFLATE_CHUNK 16384
#define CTL_MAX 125

/* ---- UTF-8 ------------------------------------------------------------
 * A DFA over byte classes. States: 0 accept, 1 reject, then "expecting
 * continuation bytes" states; the four restricted states narrow the first
 * continuation byte to exclude overlong forms (E0, F0), surrogates (ED)
 * and code points above U+10FFFF (F4). */

enum { U_OK, U_BAD, U_1, U_2, U_3, U_E0, U_ED, U_F0, U_F4, U_NSTATES };
/* Classes: 0 ASCII, 1 80-8F, 2 90-9F, 3 A0-BF, 4 C2-DF, 5 E0, 6 E1-EC EE-EF,
 * 7 ED, 8 F0, 9 F1-F3, 10 F4, 11 never valid (C0 C1 F5-FF). */
static const uint8_t utf8_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 10 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 20 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 50 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 70 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 90 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* A0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* B0 */
    11, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* C0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* D0 */
    5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 6, 6, /* E0 */
    8, 9, 9, 9, 10, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, /* F0 */
};

static const uint8_t utf8_next[U_NSTATES][12] = {
    /*          ASC    80     90     A0     C2    E0    E1    ED    F0    F1    F4    bad */
    [U_OK] = {U_OK, U_BAD, U_BAD, U_BAD, U_1, U_E0, U_2, U_ED, U_F0, U_3, U_F4, U_BAD},
    [U_BAD] = {U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD},
    [U_1] = {U_BAD, U_OK, U_OK, U_OK, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD},
    [U_2] = {U_BAD, U_1, U_1, U_1, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD},
    [U_3] = {U_BAD, U_2, U_2, U_2, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD},
    [U_E0] = {U_BAD, U_BAD, U_BAD, U_1, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD},
    [U_ED] = {U_BAD, U_1, U_1, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD},
    [U_F0] = {U_BAD, U_BAD, U_2, U_2, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD},
    [U_F4] = {U_BAD, U_2, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD, U_BAD},
};

uint32_t tusk_ws_utf8_check(uint32_t state, const void *data, size_t len) {
  const uint8_t *p = data, *end = p + len;
  if (state >= U_NSTATES) return TUSK_WS_UTF8_REJECT;
  while (p < end) {
    if (state == U_OK) {
      /* ASCII runs, eight bytes at a time. */
      while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (w & 0x8080808080808080ull) break;
        p += 8;
      }
      while (p < end && *p < 0x80) p++;
      if (p == end) break;
    }
    state = utf8_next[state][utf8_class[*p++]];
    if (state == U_BAD) return TUSK_WS_UTF8_REJECT;
  }
  return state;
}

/* ---- handshake --------------------------------------------------------- */

int tusk_ws_accept_key(const char *key, size_t len, char out[TUSK_WS_ACCEPT_LEN + 1]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  int ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha1(), NULL) == 1 &&
           EVP_DigestUpdate(c, key, len) == 1 &&
           EVP_DigestUpdate(c, WS_GUID, sizeof WS_GUID - 1) == 1 &&
           EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen == 20;
  EVP_MD_CTX_free(c);
  if (!ok) return TUSK_ENOMEM;
  EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
  return 0;
}

static int is_b64(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

int tusk_ws_check_key(const char *key, size_t len) {
  if (len != TUSK_WS_KEY_LEN || key[22] != '=' || key[23] != '=') return TUSK_EPROTO;
  for (size_t i = 0; i < 22; i++) {
    if (!is_b64((unsigned char)key[i])) return TUSK_EPROTO;
  }
  return 0;
}

int tusk_ws_check_version(const char *v, size_t len) {
  return len == 2 && v[0] == '1' && v[1] == '3' ? 0 : TUSK_EPROTO;
}

/* a[0..n) and b[0..n) equal but for ASCII case (NUL is a byte like any). */
static int same_ci(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
    if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
    if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
    if (x != y) return 0;
  }
  return 1;
}

/* One entry e[0..n) against the origin o[0..ol). */
static int origin_matches(const char *e, size_t n, const char *o, size_t ol) {
  if (n == 1 && e[0] == '*') return 1;
  const char *star = memchr(e, '*', n);
  if (!star) return n == ol && same_ci(e, o, n);
  /* A wildcard entry (scheme, "://", "*.domain[:port]") allows the origins
   * scheme://LABELS.domain[:port], one or more labels. */
  size_t pre = (size_t)(star - e), post = n - pre - 1;
  if (post < 2 || star[1] != '.' || ol <= pre + post) return 0;
  if (!same_ci(e, o, pre) || !same_ci(star + 1, o + ol - post, post)) return 0;
  for (size_t i = pre; i < ol - post; i++) {
    char ch = o[i];
    if (!(ch == '-' || ch == '.' || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
      return 0;
  }
  return 1;
}

int tusk_ws_origin_allowed(const char *list, size_t llen, const char *origin, size_t olen) {
  if (!list || llen == 0 || !origin) return 1;
  size_t i = 0, entries = 0;
  while (i < llen) {
    while (i < llen && (list[i] == ' ' || list[i] == '\t' || list[i] == '\n' || list[i] == ',' || list[i] == '\r')) i++;
    size_t s = i;
    while (i < llen && list[i] != '\n' && list[i] != ',' && list[i] != '\r') i++;
    size_t e = i;
    while (e > s && (list[e - 1] == ' ' || list[e - 1] == '\t')) e--;
    if (e == s) continue;
    entries++;
    if (origin_matches(list + s, e - s, origin, olen)) return 1;
  }
  return entries == 0;
}

int tusk_ws_make_key(char out[TUSK_WS_KEY_LEN + 1]) {
  unsigned char nonce[16];
  if (RAND_bytes(nonce, sizeof nonce) != 1) return -EIO;
  EVP_EncodeBlock((unsigned char *)out, nonce, sizeof nonce);
  return 0;
}

int tusk_ws_check_accept(const char *key, size_t klen, const char *accept, size_t alen) {
  char want[TUSK_WS_ACCEPT_LEN + 1];
  if (tusk_ws_accept_key(key, klen, want) != 0) return TUSK_ENOMEM;
  if (alen != TUSK_WS_ACCEPT_LEN || memcmp(want, accept, alen) != 0) return TUSK_EPROTO;
  return 0;
}

/* ---- Sec-WebSocket-Extensions ------------------------------------------
 * extension-list = 1#( token *( OWS ";" OWS token [ OWS "=" OWS
 * ( token / quoted-string ) ] ) ), a quoted value unescaping to a token. */

typedef struct {
  int snct, cnct; /* 1 if present */
  int smwb, cmwb; /* -1 absent, 0 present without a value, else 8..15 */
} pmd_offer_t;

static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *skip_ows(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t')) p++;
  return p;
}

/* End of the list element starting at p: the next comma outside quotes. */
static const char *elem_end(const char *p, const char *e) {
  int quoted = 0;
  for (; p < e; p++) {
    if (quoted) {
      if (*p == '\\' && p + 1 < e) {
        p++;
      } else if (*p == '"') {
        quoted = 0;
      }
    } else if (*p == '"') {
      quoted = 1;
    } else if (*p == ',') {
      break;
    }
  }
  return p;
}

static const char *token_end(const char *p, const char *e) {
  while (p < e && is_tchar((unsigned char)*p)) p++;
  return p;
}

static int name_is(const char *p, size_t n, const char *name) {
  return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

/* "8".."15" without leading zeros; else -1. */
static int window_bits(const char *v, size_t n) {
  if (n == 1 && v[0] == '8') return 8;
  if (n == 1 && v[0] == '9') return 9;
  if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
  return -1;
}

/* Applies one parameter to o; -1 if it makes the offer invalid. */
static int pmd_param(pmd_offer_t *o, const char *name, size_t nlen, const char *v, size_t vlen,
                     int has_value) {
  if (name_is(name, nlen, "server_no_context_takeover")) {
    if (o->snct || has_value) return -1;
    o->snct = 1;
  } else if (name_is(name, nlen, "client_no_context_takeover")) {
    if (o->cnct || has_value) return -1;
    o->cnct = 1;
  } else if (name_is(name, nlen, "server_max_window_bits")) {
    if (o->smwb >= 0 || !has_value || (o->smwb = window_bits(v, vlen)) < 0) return -1;
  } else if (name_is(name, nlen, "client_max_window_bits")) {
    if (o->cmwb >= 0) return -1;
    o->cmwb = 0;
    if (has_value && (o->cmwb = window_bits(v, vlen)) < 0) return -1;
  } else {
    return -1;
  }
  return 0;
}

/* Parses the list element [p, e). Returns 1 for a valid permessage-deflate
 * offer (in *o), 0 for an empty element or another extension, -1 for a
 * permessage-deflate with bad parameters or an element that does not
 * parse. */
static int parse_elem(const char *p, const char *e, pmd_offer_t *o) {
  o->snct = o->cnct = 0;
  o->smwb = o->cmwb = -1;
  p = skip_ows(p, e);
  if (p == e) return 0;
  const char *t = token_end(p, e);
  if (t == p) return -1;
  int pmd = name_is(p, (size_t)(t - p), "permessage-deflate");
  int bad = 0;
  p = skip_ows(t, e);
  while (p < e) {
    if (*p != ';') return -1;
    p = skip_ows(p + 1, e);
    const char *name = p;
    p = token_end(p, e);
    if (p == name) return -1;
    size_t nlen = (size_t)(p - name);
    p = skip_ows(p, e);
    char v[4];
    size_t vlen = 0;
    int has_value = 0, vlong = 0;
    if (p < e && *p == '=') {
      has_value = 1;
      p = skip_ows(p + 1, e);
      if (p < e && *p == '"') {
        for (p++;; p++) {
          if (p == e) return -1; /* unterminated */
          if (*p == '"') break;
          if (*p == '\\' && ++p == e) return -1;
          if (!is_tchar((unsigned char)*p)) return -1;
          if (vlen < sizeof v) v[vlen++] = *p; else vlong = 1;
        }
        p++;
      } else {
        const char *vs = p;
        p = token_end(p, e);
        for (const char *q = vs; q < p; q++) {
          if (vlen < sizeof v) v[vlen++] = *q; else vlong = 1;
        }
      }
      if (vlen == 0) return -1;
      p = skip_ows(p, e);
    }
    if (pmd && !bad && (vlong || pmd_param(o, name, nlen, v, vlen, has_value) != 0)) bad = 1;
  }
  if (!pmd) return 0;
  return bad ? -1 : 1;
}

static void put(char **w, const char *s) {
  size_t n = strlen(s);
  memcpy(*w, s, n);
  *w += n;
}

static void put_bits(char **w, const char *param, int bits) {
  put(w, param);
  if (bits >= 10) *(*w)++ = '1';
  *(*w)++ = (char)('0' + bits % 10);
}

static int bits_or_15(int b) { return b >= 8 && b <= 15 ? b : 15; }

int tusk_ws_deflate_negotiate(const char *offers, size_t len, const tusk_ws_deflate_t *pref,
                              tusk_ws_deflate_t *out, char *resp, size_t cap) {
  if (cap < TUSK_WS_EXT_MAX) return TUSK_ELIMIT;
  memset(out, 0, sizeof *out);
  resp[0] = '\0';
  const char *p = offers, *end = offers + len;
  pmd_offer_t o;
  for (;;) {
    const char *e = elem_end(p, end);
    if (parse_elem(p, e, &o) == 1) break;
    if (e == end) return 0;
    p = e + 1;
  }
  int pw = bits_or_15(pref->server_max_window_bits), pc = bits_or_15(pref->client_max_window_bits);
  out->enabled = 1;
  out->server_no_context_takeover = o.snct || pref->server_no_context_takeover;
  out->client_no_context_takeover = o.cnct || pref->client_no_context_takeover;
  out->server_max_window_bits = o.smwb > 0 ? TUSK_MIN(o.smwb, pw) : pw;
  /* The client's window can only be limited when it offered the parameter. */
  out->client_max_window_bits = o.cmwb >= 0 ? TUSK_MIN(o.cmwb ? o.cmwb : 15, pc) : 15;

  char *w = resp;
  put(&w, "permessage-deflate");
  if (out->server_no_context_takeover) put(&w, "; server_no_context_takeover");
  if (out->client_no_context_takeover) put(&w, "; client_no_context_takeover");
  if (o.smwb > 0 || out->server_max_window_bits < 15)
    put_bits(&w, "; server_max_window_bits=", out->server_max_window_bits);
  if (out->client_max_window_bits < 15)
    put_bits(&w, "; client_max_window_bits=", out->client_max_window_bits);
  *w = '\0';
  return 1;
}

int tusk_ws_deflate_offer(const tusk_ws_deflate_t *pref, char *out, size_t cap) {
  if (cap < TUSK_WS_EXT_MAX) return TUSK_ELIMIT;
  char *w = out;
  put(&w, "permessage-deflate");
  if (pref->server_no_context_takeover) put(&w, "; server_no_context_takeover");
  if (pref->client_no_context_takeover) put(&w, "; client_no_context_takeover");
  if (bits_or_15(pref->server_max_window_bits) < 15)
    put_bits(&w, "; server_max_window_bits=", pref->server_max_window_bits);
  if (bits_or_15(pref->client_max_window_bits) < 15) {
    put_bits(&w, "; client_max_window_bits=", pref->client_max_window_bits);
  } else {
    put(&w, "; client_max_window_bits");
  }
  *w = '\0';
  return 0;
}

int tusk_ws_deflate_confirm(const char *value, size_t len, const tusk_ws_deflate_t *offered,
                            tusk_ws_deflate_t *out) {
  memset(out, 0, sizeof *out);
  const char *p = value, *end = value + len;
  pmd_offer_t o, got = {0, 0, -1, -1};
  int n = 0;
  for (;;) {
    const char *e = elem_end(p, end);
    const char *s = skip_ows(p, e);
    if (s != e) {
      /* Anything but one valid permessage-deflate was not offered. */
      if (parse_elem(p, e, &o) != 1 || n++ > 0) return TUSK_EPROTO;
      got = o;
    }
    if (e == end) break;
    p = e + 1;
  }
  if (n == 0) return 0;
  int osw = bits_or_15(offered->server_max_window_bits);
  int ocw = bits_or_15(offered->client_max_window_bits);
  if (offered->server_no_context_takeover && !got.snct) return TUSK_EPROTO;
  if (osw < 15 && (got.smwb <= 0 || got.smwb > osw)) return TUSK_EPROTO;
  if (got.cmwb == 0) return TUSK_EPROTO; /* a response must give the value */
  out->enabled = 1;
  out->server_no_context_takeover = got.snct;
  out->client_no_context_takeover = got.cnct || offered->client_no_context_takeover;
  out->server_max_window_bits = got.smwb > 0 ? got.smwb : 15;
  out->client_max_window_bits = got.cmwb > 0 ? TUSK_MIN(got.cmwb, ocw) : ocw;
  return 1;
}

/* ---- the engine --------------------------------------------------------- */

struct tusk_ws_s {
  tusk_ws_callbacks_t cb;
  void *ud;
  wslay_frame_context_ptr frame; /* NULL while no frame is partly received */
  const uint8_t *in;             /* the feed call's input not yet given to wslay */
  size_t in_len;
  size_t rx_held;    /* bytes given to wslay and not yet returned as header or payload */
  uint64_t fr_left;  /* payload bytes still to come in the current frame */
  uint64_t wire;     /* payload bytes announced so far for the current message */
  size_t max_message;
  size_t wire_max;   /* payload cap for a compressed message: deflateBound(max_message) */
  size_t deflate_min;
  tusk_buf_t msg;    /* the message being received (unused while empty) */
  tusk_buf_t out;    /* queued output; out_off bytes of it are already consumed */
  size_t out_off;
  z_stream *inf, *def;
  int err;
  uint32_t rx_utf8, tx_utf8;
  uint16_t close_sent, close_recv;
  uint8_t role;
  uint8_t fr_open, fr_op, fr_fin;
  uint8_t msg_op;   /* TEXT/BINARY while a message is being received, else 0 */
  uint8_t msg_z;    /* ... and it is compressed */
  uint8_t msg_zend; /* ... and its deflate stream ended (BFINAL): the rest is ignored */
  uint8_t tx_op, tx_z; /* a fragmented message being sent */
  uint8_t in_feed;
  uint8_t pmd;      /* permessage-deflate negotiated: RSV1 allowed */
  uint8_t rx_bits, tx_bits, rx_reset, tx_reset;
  int8_t level, mem_level;
  uint8_t ctl_len;
  uint8_t ctl[CTL_MAX];
};

static int close_code_valid(int code) {
  /* 1014 (IANA "Bad Gateway", 2016) is refused as the Autobahn testsuite
   * (case 7.9.6) expects; 1012 and 1013 are accepted. */
  return (code >= 1000 && code <= 1013 && code != 1004 && code != 1005 && code != 1006) ||
         (code >= 3000 && code <= 4999);
}

/* wslay's frame layer reads from the feed call's input ... */
static ssize_t frame_recv_cb(uint8_t *buf, size_t len, int flags, void *user_data) {
  tusk_ws_t *ws = user_data;
  size_t n = TUSK_MIN(len, ws->in_len);
  if (n == 0) return 0; /* wslay: WANT_READ */
  memcpy(buf, ws->in, n);
  ws->in += n;
  ws->in_len -= n;
  ws->rx_held += n;
  return (ssize_t)n;
}

/* ... and writes to the output buffer, reserved beforehand by emit(). */
static ssize_t frame_send_cb(const uint8_t *data, size_t len, int flags, void *user_data) {
  tusk_ws_t *ws = user_data;
  if (tusk_buf_append(&ws->out, data, len) != 0) return -1;
  return (ssize_t)len;
}

static int frame_genmask_cb(uint8_t *buf, size_t len, void *user_data) {
  return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static int frame_open(tusk_ws_t *ws) {
  static const struct wslay_frame_callbacks fcb = {frame_send_cb, frame_recv_cb, frame_genmask_cb};
  if (ws->frame != NULL) return 0;
  if (wslay_frame_context_init(&ws->frame, &fcb, ws) != 0) {
    ws->frame = NULL;
    return TUSK_ENOMEM;
  }
  ws->rx_held = 0;
  ws->fr_open = 0;
  return 0;
}

static void frame_free(tusk_ws_t *ws) {
  wslay_frame_context_free(ws->frame);
  ws->frame = NULL;
  ws->rx_held = 0;
}

static void inflate_free(tusk_ws_t *ws) {
  if (ws->inf != NULL) {
    inflateEnd(ws->inf);
    free(ws->inf);
    ws->inf = NULL;
  }
}

static void deflate_free(tusk_ws_t *ws) {
  if (ws->def != NULL) {
    deflateEnd(ws->def);
    free(ws->def);
    ws->def = NULL;
  }
}

static int out_reserve(tusk_ws_t *ws, size_t n) {
  if (ws->out_off > 0 && ws->out_off == ws->out.len) {
    tusk_buf_reset(&ws->out);
    ws->out_off = 0;
  } else if (ws->out_off >= 65536 && ws->out_off * 2 >= ws->out.len) {
    tusk_buf_consume(&ws->out, ws->out_off);
    ws->out_off = 0;
  }
  return tusk_buf_reserve(&ws->out, n);
}

/* Queues one frame. The output is reserved first, so wslay's send callback
 * cannot fail half-way through a frame. */
static int emit(tusk_ws_t *ws, int fin, int rsv1, int op, const void *data, size_t len) {
  if (len > SIZE_MAX - 14 || out_reserve(ws, len + 14) != 0) return TUSK_ENOMEM;
  int made = ws->frame == NULL;
  if (frame_open(ws) != 0) return TUSK_ENOMEM;
  struct wslay_frame_iocb io;
  memset(&io, 0, sizeof io);
  io.fin = (uint8_t)fin;
  io.rsv = rsv1 ? WSLAY_RSV1_BIT : WSLAY_RSV_NONE;
  io.opcode = (uint8_t)op;
  io.mask = ws->role == TUSK_WS_CLIENT;
  io.payload_length = len;
  io.data = data;
  io.data_length = len;
  ssize_t r = wslay_frame_send(ws->frame, &io);
  if (made && !ws->in_feed) frame_free(ws);
  if (r < 0 || (size_t)r != len) return r == WSLAY_ERR_INVALID_CALLBACK ? -EIO : TUSK_ENOMEM;
  return 0;
}

/* Releases what only receiving or sending needs, once the engine is done. */
static void release(tusk_ws_t *ws) {
  if (!ws->in_feed) frame_free(ws);
  tusk_buf_dispose(&ws->msg);
  inflate_free(ws);
  deflate_free(ws);
  ws->msg_op = 0;
  ws->tx_op = 0;
}

/* Fails the connection: queues our close with code (unless one was sent)
 * and makes every later feed return err. */
static int fail(tusk_ws_t *ws, int err, int code) {
  if (ws->err) return ws->err;
  ws->err = err;
  if (!ws->close_sent) {
    uint8_t b[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    if (emit(ws, 1, 0, TUSK_WS_CLOSE, b, 2) == 0) ws->close_sent = (uint16_t)code;
  }
  return err;
}

tusk_ws_t *tusk_ws_create(const tusk_ws_config_t *cfg, const tusk_ws_callbacks_t *cb, void *ud) {
  const tusk_ws_deflate_t *d = &cfg->deflate;
  if (cfg->role != TUSK_WS_SERVER && cfg->role != TUSK_WS_CLIENT) return NULL;
  if (d->enabled) {
    int sw = d->server_max_window_bits, cw = d->client_max_window_bits;
    if ((sw != 0 && (sw < 8 || sw > 15)) || (cw != 0 && (cw < 8 || cw > 15))) return NULL;
  }
  if (cfg->deflate_level < 0 || cfg->deflate_level > 9 || cfg->deflate_mem_level < 0 ||
      cfg->deflate_mem_level > 9)
    return NULL;
  tusk_ws_t *ws = calloc(1, sizeof *ws);
  if (ws == NULL) return NULL;
  if (cb != NULL) ws->cb = *cb;
  ws->ud = ud;
  ws->role = (uint8_t)cfg->role;
  ws->max_message = cfg->max_message ? cfg->max_message : TUSK_WS_MAX_MESSAGE_DEFAULT;
  size_t slack = (ws->max_message >> 10) + 64;
  ws->wire_max = ws->max_message > SIZE_MAX - slack ? SIZE_MAX : ws->max_message + slack;
  ws->deflate_min = cfg->deflate_min;
  tusk_buf_init(&ws->msg);
  tusk_buf_init(&ws->out);
  if (d->enabled) {
    int server = cfg->role == TUSK_WS_SERVER;
    int sw = bits_or_15(d->server_max_window_bits), cw = bits_or_15(d->client_max_window_bits);
    ws->pmd = 1;
    ws->rx_bits = (uint8_t)(server ? cw : sw);
    ws->tx_bits = (uint8_t)(server ? sw : cw);
    ws->rx_reset = (uint8_t)(server ? d->client_no_context_takeover : d->server_no_context_takeover);
    ws->tx_reset = (uint8_t)(server ? d->server_no_context_takeover : d->client_no_context_takeover);
    ws->level = (int8_t)(cfg->deflate_level ? cfg->deflate_level : Z_DEFAULT_COMPRESSION);
    ws->mem_level = (int8_t)(cfg->deflate_mem_level ? cfg->deflate_mem_level : 8);
  }
  return ws;
}

void tusk_ws_destroy(tusk_ws_t *ws) {
  if (ws == NULL) return;
  frame_free(ws);
  tusk_buf_dispose(&ws->msg);
  tusk_buf_dispose(&ws->out);
  inflate_free(ws);
  deflate_free(ws);
  free(ws);
}

/* ---- receiving ---------------------------------------------------------- */

static size_t header_len(uint64_t payload, int mask) {
  return 2 + (payload < 126 ? 0 : payload < 65536 ? 2 : 8) + (mask ? 4 : 0);
}

static int inflate_open(tusk_ws_t *ws) {
  ws->inf = calloc(1, sizeof *ws->inf);
  if (ws->inf == NULL) return TUSK_ENOMEM;
  /* Old zlib deflated raw streams with a 512-byte window when asked for 256
   * bytes; accept what such peers send for 256 bytes more. */
  if (inflateInit2(ws->inf, -TUSK_MAX(ws->rx_bits, 9)) != Z_OK) {
    free(ws->inf);
    ws->inf = NULL;
    return TUSK_ENOMEM;
  }
  return 0;
}

/* Inflates compressed payload into the message, checking size and UTF-8
 * as output appears. */
static int rx_inflate(tusk_ws_t *ws, const uint8_t *p, size_t n) {
  if (ws->msg_zend) return 0;
  if (ws->inf == NULL && inflate_open(ws) != 0) return fail(ws, TUSK_ENOMEM, TUSK_WS_INTERNAL_ERROR);
  z_stream *z = ws->inf;
  z->next_in = (Bytef *)p;
  z->avail_in = (uInt)n;
  for (;;) {
    size_t limit = ws->max_message + 1 - ws->msg.len;
    size_t room = ws->msg.cap ? ws->msg.cap - ws->msg.len - 1 : 0;
    if (room == 0) {
      if (tusk_buf_reserve(&ws->msg, TUSK_MIN(limit, INFLATE_CHUNK)) != 0)
        return fail(ws, TUSK_ENOMEM, TUSK_WS_INTERNAL_ERROR);
      room = ws->msg.cap - ws->msg.len - 1;
    }
    room = TUSK_MIN(room, TUSK_MIN(limit, (size_t)UINT_MAX));
    z->next_out = (Bytef *)ws->msg.data + ws->msg.len;
    z->avail_out = (uInt)room;
    int r = inflate(z, Z_SYNC_FLUSH);
    size_t got = room - z->avail_out;
    if (got > 0) {
      if (ws->msg_op == TUSK_WS_TEXT) {
        ws->rx_utf8 = tusk_ws_utf8_check(ws->rx_utf8, ws->msg.data + ws->msg.len, got);
        if (ws->rx_utf8 == TUSK_WS_UTF8_REJECT)
          return fail(ws, TUSK_EPROTO, TUSK_WS_INVALID_DATA);
      }
      ws->msg.len += got;
      ws->msg.data[ws->msg.len] = '\0';
      if (ws->msg.len > ws->max_message) return fail(ws, TUSK_ELIMIT, TUSK_WS_TOO_BIG);
    }
    if (r == Z_STREAM_END) {
      ws->msg_zend = 1; /* a final block (BFINAL): RFC 7692 7.2.3.4 */
      return 0;
    }
    if (r == Z_MEM_ERROR) return fail(ws, TUSK_ENOMEM, TUSK_WS_INTERNAL_ERROR);
    if ((r != Z_OK && r != Z_BUF_ERROR) || (got == 0 && z->avail_in != 0 && z->avail_out != 0))
      return fail(ws, TUSK_EPROTO, TUSK_WS_INVALID_DATA);
    if (z->avail_in == 0 && z->avail_out != 0) return 0;
  }
}

/* After a compressed message: drop or keep the inflater's window. */
static int rx_inflate_end(tusk_ws_t *ws) {
  int ended = ws->msg_zend;
  ws->msg_zend = 0;
  if (ws->rx_reset) {
    inflate_free(ws);
  } else if (ended && ws->inf != NULL) {
    /* The peer finished its deflate stream but keeps its window: start a
     * new stream that still sees the old window. */
    size_t cap = (size_t)1 << TUSK_MAX(ws->rx_bits, 9);
    Bytef *dict = malloc(cap);
    uInt dlen = 0;
    if (dict == NULL) return fail(ws, TUSK_ENOMEM, TUSK_WS_INTERNAL_ERROR);
    if (inflateGetDictionary(ws->inf, dict, &dlen) != Z_OK || inflateReset(ws->inf) != Z_OK ||
        (dlen > 0 && inflateSetDictionary(ws->inf, dict, dlen) != Z_OK)) {
      free(dict);
      return fail(ws, TUSK_ENOMEM, TUSK_WS_INTERNAL_ERROR);
    }
    free(dict);
  }
  return 0;
}

static void deliver(tusk_ws_t *ws, int op, const void *data, size_t len) {
  if (ws->cb.on_message != NULL) ws->cb.on_message(ws->ud, op, data, len);
}

/* Payload bytes of a data frame; end: they complete the message. */
static void rx_data(tusk_ws_t *ws, const uint8_t *p, size_t n, int end) {
  int op = ws->msg_op;
  if (ws->msg_z) {
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    if (n > 0 && rx_inflate(ws, p, n) != 0) return;
    if (!end) return;
    if (rx_inflate(ws, tail, sizeof tail) != 0) return;
  } else {
    if (op == TUSK_WS_TEXT && n > 0) {
      ws->rx_utf8 = tusk_ws_utf8_check(ws->rx_utf8, p, n);
      if (ws->rx_utf8 == TUSK_WS_UTF8_REJECT) {
        fail(ws, TUSK_EPROTO, TUSK_WS_INVALID_DATA);
        return;
      }
    }
    if (end && ws->msg.len == 0) {
      /* The whole message is in this chunk: hand out wslay's buffer. */
      if (op == TUSK_WS_TEXT && ws->rx_utf8 != TUSK_WS_UTF8_ACCEPT) {
        fail(ws, TUSK_EPROTO, TUSK_WS_INVALID_DATA);
        return;
      }
      ws->msg_op = 0;
      tusk_buf_dispose(&ws->msg);
      deliver(ws, op, p, n);
      return;
    }
    if (n > 0 && tusk_buf_append(&ws->msg, p, n) != 0) {
      fail(ws, TUSK_ENOMEM, TUSK_WS_INTERNAL_ERROR);
      return;
    }
    if (!end) return;
  }
  if (op == TUSK_WS_TEXT && ws->rx_utf8 != TUSK_WS_UTF8_ACCEPT) {
    fail(ws, TUSK_EPROTO, TUSK_WS_INVALID_DATA);
    return;
  }
  /* Reset first, so that the callback sees an engine between messages. */
  tusk_buf_t m = ws->msg;
  tusk_buf_init(&ws->msg);
  ws->msg_op = 0;
  if (ws->msg_z && rx_inflate_end(ws) != 0) {
    tusk_buf_dispose(&m);
    return;
  }
  deliver(ws, op, m.data, m.len);
  tusk_buf_dispose(&m);
}

static void rx_control(tusk_ws_t *ws) {
  const uint8_t *p = ws->ctl;
  size_t n = ws->ctl_len;
  if (ws->fr_op == TUSK_WS_PING) {
    if (!ws->close_sent && emit(ws, 1, 0, TUSK_WS_PONG, p, n) != 0) {
      fail(ws, TUSK_ENOMEM, TUSK_WS_INTERNAL_ERROR);
      return;
    }
    if (ws->cb.on_ping != NULL) ws->cb.on_ping(ws->ud, p, n);
  } else if (ws->fr_op == TUSK_WS_PONG) {
    if (ws->cb.on_pong != NULL) ws->cb.on_pong(ws->ud, p, n);
  } else {
    int code = TUSK_WS_NO_STATUS;
    if (n == 1) {
      fail(ws, TUSK_EPROTO, TUSK_WS_PROTOCOL_ERROR);
      return;
    }
    if (n >= 2) {
      code = p[0] << 8 | p[1];
      if (!close_code_valid(code)) {
        fail(ws, TUSK_EPROTO, TUSK_WS_PROTOCOL_ERROR);
        return;
      }
      if (tusk_ws_utf8_check(0, p + 2, n - 2) != TUSK_WS_UTF8_ACCEPT) {
        fail(ws, TUSK_EPROTO, TUSK_WS_INVALID_DATA);
        return;
      }
    }
    ws->close_recv = (uint16_t)code;
    if (!ws->close_sent) {
      /* Echo the code (none for none). */
      if (emit(ws, 1, 0, TUSK_WS_CLOSE, p, n >= 2 ? 2 : 0) != 0) {
        fail(ws, TUSK_ENOMEM, TUSK_WS_INTERNAL_ERROR);
        return;
      }
      ws->close_sent = (uint16_t)code;
    }
    if (ws->cb.on_close != NULL)
      ws->cb.on_close(ws->ud, code, n > 2 ? (const char *)p + 2 : "", n > 2 ? n - 2 : 0);
  }
}

/* The first chunk of a frame: validates the header against the state. */
static int rx_frame_start(tusk_ws_t *ws, const struct wslay_frame_iocb *io) {
  int op = io->opcode, rsv = io->rsv;
  if (io->mask != (ws->role == TUSK_WS_SERVER) || (rsv & (WSLAY_RSV2_BIT | WSLAY_RSV3_BIT)))
    return fail(ws, TUSK_EPROTO, TUSK_WS_PROTOCOL_ERROR);
  if (op >= TUSK_WS_CLOSE) {
    /* wslay checked fin and the 125-byte limit. */
    if (op > TUSK_WS_PONG || rsv) return fail(ws, TUSK_EPROTO, TUSK_WS_PROTOCOL_ERROR);
    ws->ctl_len = 0;
  } else if (op == TUSK_WS_CONT) {
    if (!ws->msg_op || rsv) return fail(ws, TUSK_EPROTO, TUSK_WS_PROTOCOL_ERROR);
  } else if (op == TUSK_WS_TEXT || op == TUSK_WS_BINARY) {
    if (ws->msg_op || (rsv && !ws->pmd)) return fail(ws, TUSK_EPROTO, TUSK_WS_PROTOCOL_ERROR);
    ws->msg_op = (uint8_t)op;
    ws->msg_z = rsv != 0;
    ws->msg_zend = 0;
    ws->wire = 0;
    ws->rx_utf8 = TUSK_WS_UTF8_ACCEPT;
    tusk_buf_reset(&ws->msg);
  } else {
    return fail(ws, TUSK_EPROTO, TUSK_WS_PROTOCOL_ERROR);
  }
  if (op < TUSK_WS_CLOSE) {
    /* Fail before the payload arrives when the header already says too big. */
    uint64_t limit = ws->msg_z ? ws->wire_max : ws->max_message;
    if (io->payload_length > limit - ws->wire) return fail(ws, TUSK_ELIMIT, TUSK_WS_TOO_BIG);
    ws->wire += io->payload_length;
  }
  ws->fr_open = 1;
  ws->fr_op = (uint8_t)op;
  ws->fr_fin = io->fin;
  ws->fr_left = io->payload_length;
  return 0;
}

static void rx_chunk(tusk_ws_t *ws, const struct wslay_frame_iocb *io) {
  if (!ws->fr_open) {
    ws->rx_held -= TUSK_MIN(ws->rx_held, header_len(io->payload_length, io->mask));
    if (rx_frame_start(ws, io) != 0) return;
  }
  ws->rx_held -= TUSK_MIN(ws->rx_held, io->data_length);
  ws->fr_left -= io->data_length;
  int last = ws->fr_left == 0;
  if (last) ws->fr_open = 0;
  if (ws->fr_op >= TUSK_WS_CLOSE) {
    memcpy(ws->ctl + ws->ctl_len, io->data, io->data_length);
    ws->ctl_len = (uint8_t)(ws->ctl_len + io->data_length);
    if (last) rx_control(ws);
    return;
  }
  rx_data(ws, io->data, io->data_length, last && ws->fr_fin);
}

int tusk_ws_feed(tusk_ws_t *ws, const void *data, size_t len) {
  if (ws->in_feed) return -EINVAL;
  if (ws->err) return ws->err;
  if (ws->close_recv || len == 0) return 0;
  if (frame_open(ws) != 0) {
    int err = fail(ws, TUSK_ENOMEM, TUSK_WS_INTERNAL_ERROR);
    release(ws);
    return err;
  }
  ws->in = data;
  ws->in_len = len;
  ws->in_feed = 1;
  while (!ws->err && !ws->close_recv) {
    struct wslay_frame_iocb io;
    memset(&io, 0, sizeof io);
    size_t before = ws->in_len;
    ssize_t r = wslay_frame_recv(ws->frame, &io);
    if (r == WSLAY_ERR_WANT_READ) {
      if (ws->in_len == 0 || ws->in_len == before) break;
      continue;
    }
    if (r < 0) {
      /* Framing: a fragmented or long control frame, a non-minimal or
       * 64-bit length with the top bit set. */
      fail(ws, TUSK_EPROTO, TUSK_WS_PROTOCOL_ERROR);
      break;
    }
    rx_chunk(ws, &io);
  }
  ws->in_feed = 0;
  ws->in = NULL;
  ws->in_len = 0;
  if (ws->err || ws->close_recv) {
    release(ws);
  } else if (!ws->fr_open && ws->rx_held == 0) {
    frame_free(ws); /* between frames with nothing buffered: idle */
  }
  return ws->err;
}

/* ---- sending ------------------------------------------------------------ */

static int tx_can_compress(const tusk_ws_t *ws) {
  /* zlib's raw deflate has no 256-byte window: with 8 bits we send
   * uncompressed messages, which permessage-deflate always allows. */
  return ws->pmd && ws->tx_bits >= 9;
}

/* Compresses one message or fragment into out (sync flush; the final
 * 00 00 ff ff stripped when fin). Any failure leaves the compressor out of
 * step with the peer, so it fails the engine. */
static int tx_deflate(tusk_ws_t *ws, const uint8_t *p, size_t len, int fin, tusk_buf_t *out) {
  if (ws->def == NULL) {
    ws->def = calloc(1, sizeof *ws->def);
    if (ws->def == NULL) return TUSK_ENOMEM;
    if (deflateInit2(ws->def, ws->level, Z_DEFLATED, -(int)ws->tx_bits, ws->mem_level,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
      free(ws->def);
      ws->def = NULL;
      return TUSK_ENOMEM;
    }
  }
  z_stream *z = ws->def;
  do {
    size_t step = TUSK_MIN(len, (size_t)1 << 30);
    z->next_in = (Bytef *)p;
    z->avail_in = (uInt)step;
    p += step;
    len -= step;
    int flush = len ? Z_NO_FLUSH : Z_SYNC_FLUSH;
    do {
      if (tusk_buf_reserve(out, TUSK_MAX(step / 2, 1024)) != 0)
        return fail(ws, TUSK_ENOMEM, TUSK_WS_INTERNAL_ERROR);
      size_t room = TUSK_MIN(out->cap - out->len - 1, (size_t)UINT_MAX);
      z->next_out = (Bytef *)out->data + out->len;
      z->avail_out = (uInt)room;
      if (deflate(z, flush) == Z_STREAM_ERROR) return fail(ws, TUSK_ENOMEM, TUSK_WS_INTERNAL_ERROR);
      out->len += room - z->avail_out;
    } while (z->avail_out == 0);
  } while (len > 0);
  if (fin) {
    /* RFC 7692 7.2.1: end with an empty stored block, minus its last four
     * bytes. zlib wrote one unless it had nothing to flush (no input since
     * the previous sync flush); then the block's first byte, 00, is
     * missing. */
    if (out->len >= 4 && memcmp(out->data + out->len - 4, "\x00\x00\xff\xff", 4) == 0) {
      out->len -= 4;
    } else {
      out->data[out->len++] = '\0';
    }
    if (ws->tx_reset) deflate_free(ws);
  }
  return 0;
}

static int tx_check(const tusk_ws_t *ws) {
  return ws->err || ws->close_sent ? TUSK_ECLOSED : 0;
}

static int tx_message(tusk_ws_t *ws, int op, const void *data, size_t len, int fin, int first,
                      int z) {
  if (!z) return emit(ws, fin, 0, first ? op : TUSK_WS_CONT, data, len);
  tusk_buf_t c;
  tusk_buf_init(&c);
  int rc = tx_deflate(ws, data, len, fin, &c);
  if (rc == 0) {
    rc = emit(ws, fin, first, first ? op : TUSK_WS_CONT, c.data, c.len);
    if (rc != 0) fail(ws, rc, TUSK_WS_INTERNAL_ERROR);
  }
  tusk_buf_dispose(&c);
  return rc;
}

int tusk_ws_send(tusk_ws_t *ws, int opcode, const void *data, size_t len) {
  if (opcode != TUSK_WS_TEXT && opcode != TUSK_WS_BINARY) return -EINVAL;
  int rc = tx_check(ws);
  if (rc != 0) return rc;
  if (ws->tx_op) return -EINVAL;
  if (opcode == TUSK_WS_TEXT && tusk_ws_utf8_check(0, data, len) != TUSK_WS_UTF8_ACCEPT)
    return -EINVAL;
  return tx_message(ws, opcode, data, len, 1, 1, tx_can_compress(ws) && len >= ws->deflate_min);
}

int tusk_ws_send_fragment(tusk_ws_t *ws, int opcode, const void *data, size_t len, int fin) {
  if (opcode != TUSK_WS_TEXT && opcode != TUSK_WS_BINARY) return -EINVAL;
  int rc = tx_check(ws);
  if (rc != 0) return rc;
  if (ws->tx_op && ws->tx_op != opcode) return -EINVAL;
  int first = !ws->tx_op;
  uint32_t st = first ? TUSK_WS_UTF8_ACCEPT : ws->tx_utf8;
  if (opcode == TUSK_WS_TEXT) {
    st = tusk_ws_utf8_check(st, data, len);
    if (st == TUSK_WS_UTF8_REJECT || (fin && st != TUSK_WS_UTF8_ACCEPT)) return -EINVAL;
  }
  int z = first ? tx_can_compress(ws) : ws->tx_z;
  rc = tx_message(ws, opcode, data, len, fin, first, z);
  if (rc != 0) return rc;
  ws->tx_op = fin ? 0 : (uint8_t)opcode;
  ws->tx_z = (uint8_t)z;
  ws->tx_utf8 = st;
  return 0;
}

int tusk_ws_ping(tusk_ws_t *ws, const void *data, size_t len) {
  if (len > CTL_MAX) return -EINVAL;
  int rc = tx_check(ws);
  return rc ? rc : emit(ws, 1, 0, TUSK_WS_PING, data, len);
}

int tusk_ws_pong(tusk_ws_t *ws, const void *data, size_t len) {
  if (len > CTL_MAX) return -EINVAL;
  int rc = tx_check(ws);
  return rc ? rc : emit(ws, 1, 0, TUSK_WS_PONG, data, len);
}

int tusk_ws_close(tusk_ws_t *ws, int code, const char *reason, size_t len) {
  int rc = tx_check(ws);
  if (rc != 0) return rc;
  uint8_t b[CTL_MAX];
  size_t n = 0;
  if (code == 0) {
    if (len != 0) return -EINVAL;
  } else {
    if (!close_code_valid(code) || len > CTL_MAX - 2 ||
        tusk_ws_utf8_check(0, reason, len) != TUSK_WS_UTF8_ACCEPT)
      return -EINVAL;
    b[0] = (uint8_t)(code >> 8);
    b[1] = (uint8_t)code;
    if (len) memcpy(b + 2, reason, len);
    n = len + 2;
  }
  rc = emit(ws, 1, 0, TUSK_WS_CLOSE, n ? b : NULL, n);
  if (rc != 0) return rc;
  ws->close_sent = (uint16_t)(code ? code : TUSK_WS_NO_STATUS);
  ws->tx_op = 0;
  deflate_free(ws); /* nothing more will be compressed */
  return 0;
}

/* ---- output and state --------------------------------------------------- */

size_t tusk_ws_output_len(const tusk_ws_t *ws) { return ws->out.len - ws->out_off; }

const void *tusk_ws_output(const tusk_ws_t *ws, size_t *len) {
  *len = ws->out.len - ws->out_off;
  return *len ? ws->out.data + ws->out_off : NULL;
}

void tusk_ws_output_consume(tusk_ws_t *ws, size_t n) {
  ws->out_off += TUSK_MIN(n, ws->out.len - ws->out_off);
  if (ws->out_off == ws->out.len) {
    tusk_buf_dispose(&ws->out);
    ws->out_off = 0;
  }
}

int tusk_ws_output_take(tusk_ws_t *ws, tusk_buf_t *dst) {
  size_t n = ws->out.len - ws->out_off;
  if (n == 0) return 0;
  if (dst->len == 0 && ws->out_off == 0) {
    tusk_buf_t t = *dst;
    *dst = ws->out;
    ws->out = t;
    tusk_buf_reset(&ws->out);
  } else if (tusk_buf_append(dst, ws->out.data + ws->out_off, n) != 0) {
    return TUSK_ENOMEM;
  }
  tusk_buf_dispose(&ws->out);
  ws->out_off = 0;
  return 0;
}

int tusk_ws_done(const tusk_ws_t *ws) { return ws->err != 0 || (ws->close_sent && ws->close_recv); }

int tusk_ws_close_sent(const tusk_ws_t *ws) { return ws->close_sent; }

int tusk_ws_close_received(const tusk_ws_t *ws) { return ws->close_recv; }
