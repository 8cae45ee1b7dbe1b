/* WebSocket protocol engine (RFC 6455, permessage-deflate from RFC 7692)
 * on memory buffers: it never touches a socket, a loop or PHP. The
 * connection feeds it the bytes it read (after TLS) and writes out what
 * the engine queued; whole messages come back through callbacks. Both
 * roles: a server (HTTP/1.1 upgrade, websocket:// listener) and a client
 * (the async client in PHP workers; its frames are masked).
 *
 * Framing (header parsing and validation, length encoding, masking) is
 * wslay's frame layer; message reassembly, control frames, the closing
 * handshake, UTF-8 validation and deflate are here. wslay's event layer
 * is not used: it costs 8.8 KiB per connection, answers framing errors
 * with an empty close instead of 1002, echoes a 1-byte close payload as a
 * normal close, refuses codes 1012-1014 and cannot check compressed text.
 *
 * Memory per connection (x86-64, glibc; measured by tests/unit/test_ws.c
 * with mallinfo2 over 1000 engines): an idle engine is one allocation,
 * 352 bytes of heap, with or without permessage-deflate as long as both
 * directions use no_context_takeover. wslay's frame context (4.3 KiB,
 * mostly its input buffer) exists only while a frame is partly received
 * and for the duration of a send; the message buffer only while a message
 * is partly received (up to about twice max_message); the output buffer
 * only while it holds bytes. zlib streams: with no_context_takeover in a
 * direction its stream lives for one message; with context takeover for
 * the whole connection: inflate about 7 KiB + 2^window_bits, deflate about
 * 6 KiB + 2^(window_bits+2) + 2^(mem_level+9). Measured idle with context
 * takeover both ways: 309 KB at windows 15 and mem_level 8 (zlib's
 * defaults), 150 KB at windows 10. A server that wants a small idle
 * footprint with compression asks for no_context_takeover in both
 * directions (see tusk_ws_deflate_negotiate). (wslay's event layer alone
 * would cost 8.8 KiB.)
 *
 * Threads: none shared; an engine belongs to one thread. No function
 * blocks. */
#ifndef TUSK_HTTP_WS_H
#define TUSK_HTTP_WS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define TUSK_WS_MAX_MESSAGE_DEFAULT ((size_t)1 << 20) /* 1 MiB */
#define TUSK_WS_KEY_LEN 24    /* Sec-WebSocket-Key: base64 of 16 bytes */
#define TUSK_WS_ACCEPT_LEN 28 /* Sec-WebSocket-Accept: base64 of a SHA-1 */
#define TUSK_WS_EXT_MAX 160   /* room for any extension header value this module writes */

/* Opcodes as on the wire. */
enum {
  TUSK_WS_CONT = 0x0,
  TUSK_WS_TEXT = 0x1,
  TUSK_WS_BINARY = 0x2,
  TUSK_WS_CLOSE = 0x8,
  TUSK_WS_PING = 0x9,
  TUSK_WS_PONG = 0xa,
};

/* Close codes (RFC 6455 7.4.1; 1012-1013 from the IANA registry; 1014 is
 * refused, as the Autobahn testsuite expects). */
enum {
  TUSK_WS_NORMAL = 1000,
  TUSK_WS_GOING_AWAY = 1001,
  TUSK_WS_PROTOCOL_ERROR = 1002,
  TUSK_WS_UNSUPPORTED = 1003,
  TUSK_WS_NO_STATUS = 1005, /* reported, never sent: the close had no code */
  TUSK_WS_INVALID_DATA = 1007,
  TUSK_WS_POLICY = 1008,
  TUSK_WS_TOO_BIG = 1009,
  TUSK_WS_INTERNAL_ERROR = 1011,
};

typedef enum { TUSK_WS_SERVER = 0, TUSK_WS_CLIENT = 1 } tusk_ws_role_t;

/* ---- handshake ----------------------------------------------------------
 * Header values are passed without surrounding whitespace. */

/* Writes Sec-WebSocket-Accept for a client's key: base64(SHA-1(key ||
 * 258EAFA5-E914-47DA-95CA-C5AB0DC85B11)), 28 characters and a NUL. The key
 * is not validated (use tusk_ws_check_key). Returns 0, or TUSK_ENOMEM if
 * OpenSSL fails. */
int tusk_ws_accept_key(const char *key, size_t len, char out[TUSK_WS_ACCEPT_LEN + 1]);
/* 0 if key is a Sec-WebSocket-Key the server can accept: 24 characters of
 * base64 that decode to 16 bytes ("...==" padding). Else TUSK_EPROTO: answer
 * 400. */
int tusk_ws_check_key(const char *key, size_t len);
/* 0 if Sec-WebSocket-Version is "13", else TUSK_EPROTO: answer 426 with
 * "Sec-WebSocket-Version: 13". */
int tusk_ws_check_version(const char *v, size_t len);
/* The origin check of a handshake: 1 when the Origin value origin[0..olen)
 * is allowed by list[0..llen), entries separated by newlines or commas,
 * spaces around them ignored: "*" allows any origin; a scheme, "://" and
 * "*.example.com" allow any subdomain of example.com on that scheme (and
 * port, if given); and
 * any other entry exactly that origin (scheme://host[:port], compared
 * without regard to case). An empty list allows everything; so does a
 * missing Origin (origin NULL: not a browser, which always sends it).
 * Else 0: answer 403. Pure; never reads past the lengths. */
int tusk_ws_origin_allowed(const char *list, size_t llen, const char *origin, size_t olen);
/* Client: writes a fresh Sec-WebSocket-Key (16 bytes from RAND_bytes, base64)
 * and a NUL. Returns 0, or -EIO without randomness. */
int tusk_ws_make_key(char out[TUSK_WS_KEY_LEN + 1]);
/* Client: 0 if the server's Sec-WebSocket-Accept matches the key sent,
 * else TUSK_EPROTO (the client must fail the connection). */
int tusk_ws_check_accept(const char *key, size_t klen, const char *accept, size_t alen);

/* ---- permessage-deflate negotiation ------------------------------------ */

/* Parameters of permessage-deflate, named as on the wire (server_* limit
 * what the server compresses, client_* what the client compresses). The
 * same struct holds a side's preferences and the negotiated result. */
typedef struct {
  int enabled;                    /* result: 1 if negotiated (preferences ignore it) */
  int server_no_context_takeover; /* the server resets its compressor after each message */
  int client_no_context_takeover; /* the client resets its compressor after each message */
  int server_max_window_bits;     /* 8..15; 0 means 15 */
  int client_max_window_bits;     /* 8..15; 0 means 15 */
} tusk_ws_deflate_t;

/* Server: reads a client's Sec-WebSocket-Extensions value (all the
 * header's lines joined with ","; other extensions are skipped) and picks
 * the first permessage-deflate offer it can accept. An offer with an
 * unknown, repeated or malformed parameter, or a value out of range, is
 * declined and the next one is tried (RFC 7692 5), and so is an element
 * that does not parse (an unterminated quote runs to the end of the value):
 * it never fails the handshake. pref narrows the
 * result: pref->server_no_context_takeover and client_no_context_takeover
 * are added to the response (each saves one long-lived zlib stream here),
 * pref->server_max_window_bits caps the server's window (announced even
 * when not offered), pref->client_max_window_bits caps the client's window
 * only when the offer has client_max_window_bits (the RFC forbids it
 * otherwise: the client then uses up to 15). A server_max_window_bits=8
 * offer is accepted but the server then sends uncompressed messages (raw
 * deflate in zlib cannot use a 256-byte window).
 * Returns 1 with *out filled and resp holding the response value
 * ("permessage-deflate; ..." and a NUL), 0 if no offer was acceptable
 * (answer without the extension), or TUSK_ELIMIT if cap is below
 * TUSK_WS_EXT_MAX. */
int tusk_ws_deflate_negotiate(const char *offers, size_t len, const tusk_ws_deflate_t *pref,
                              tusk_ws_deflate_t *out, char *resp, size_t cap);
/* Client: writes the offer for pref (always with client_max_window_bits,
 * so the server may limit our window) and a NUL. Returns 0 or TUSK_ELIMIT
 * if cap is below TUSK_WS_EXT_MAX. */
int tusk_ws_deflate_offer(const tusk_ws_deflate_t *pref, char *out, size_t cap);
/* Client: checks the server's Sec-WebSocket-Extensions against what
 * tusk_ws_deflate_offer(offered) sent. Returns 1 with *out filled, 0 if the
 * value is empty (len 0: no extension), or TUSK_EPROTO if the server
 * answered something not offered (another extension, unknown or repeated
 * parameter, a window above the offer, a requested parameter dropped): the
 * client must fail the connection. */
int tusk_ws_deflate_confirm(const char *value, size_t len, const tusk_ws_deflate_t *offered,
                            tusk_ws_deflate_t *out);

/* ---- the engine --------------------------------------------------------- */

typedef struct tusk_ws_s tusk_ws_t;

typedef struct {
  tusk_ws_role_t role;
  size_t max_message;        /* largest message accepted, after decompression;
                                0 = TUSK_WS_MAX_MESSAGE_DEFAULT. Above: close 1009 */
  tusk_ws_deflate_t deflate; /* the negotiated result; enabled 0: no compression */
  int deflate_level;         /* 1..9 for messages we send; 0 = zlib's default (6) */
  int deflate_mem_level;     /* 1..9, zlib's memLevel for our compressor; 0 = 8 */
  size_t deflate_min;        /* messages shorter than this are sent uncompressed; 0 = none */
} tusk_ws_config_t;

/* All optional. data is valid during the call only. Callbacks may call
 * tusk_ws_send*, ping, pong, close and the output functions; never
 * tusk_ws_feed or tusk_ws_destroy. */
typedef struct {
  /* A whole message (TUSK_WS_TEXT: valid UTF-8, or TUSK_WS_BINARY),
   * reassembled and decompressed. Not NUL-terminated. */
  void (*on_message)(void *ud, int opcode, const void *data, size_t len);
  /* A ping; the pong is already queued (unless we have sent a close). */
  void (*on_ping)(void *ud, const void *data, size_t len);
  void (*on_pong)(void *ud, const void *data, size_t len);
  /* The peer's close: code (1005 when it carried none) and UTF-8 reason.
   * If we had not closed yet, the same code is already queued in reply.
   * The engine is then done (tusk_ws_done). */
  void (*on_close)(void *ud, int code, const char *reason, size_t len);
} tusk_ws_callbacks_t;

/* Copies cfg and cb. Returns NULL on out of memory or a cfg value out of
 * range (deflate window bits outside 8..15 or 0, levels outside 0..9). */
tusk_ws_t *tusk_ws_create(const tusk_ws_config_t *cfg, const tusk_ws_callbacks_t *cb, void *ud);
/* NULL is a no-op. Sends nothing. */
void tusk_ws_destroy(tusk_ws_t *ws);

/* Feeds bytes read from the peer (any split, down to single bytes) and
 * calls the callbacks for what they complete; pings are answered and a
 * peer's close is echoed before this returns. Returns 0 (also for input
 * after the peer's close, which is discarded), or a negative error after
 * which a close frame is queued, the engine is done and every later call
 * returns the same error:
 *   TUSK_EPROTO  1002: a bad opcode, reserved bit, masking for the role, a
 *                fragmented or >125-byte control frame, a continuation
 *                without a start or a new message inside a fragmented one,
 *                a non-minimal length, a close payload of 1 byte or a code
 *                that may not be sent (<1000, 1004-1006, 1015-2999, >4999);
 *                1007: text or close reason not UTF-8 (checked as bytes
 *                arrive, so a bad sequence fails before the message ends),
 *                compressed data that does not inflate
 *   TUSK_ELIMIT  1009: a message above max_message (checked from the frame
 *                header when uncompressed, as soon as wslay shows it, i.e.
 *                with the frame's first payload byte; while inflating
 *                otherwise, and a compressed payload above
 *                max_message + max_message/1024 + 64 from its header)
 *   TUSK_ENOMEM  1011 (when it can still be queued)
 * Must not be called from a callback. */
int tusk_ws_feed(tusk_ws_t *ws, const void *data, size_t len);

/* Queues one message (TUSK_WS_TEXT or TUSK_WS_BINARY) as a single frame,
 * compressed when negotiated and len >= deflate_min. Text must be valid
 * UTF-8. Returns 0; -EINVAL for another opcode, invalid UTF-8 or while a
 * fragmented message is being sent; TUSK_ECLOSED once we sent a close (or
 * failed); TUSK_ENOMEM. On error nothing is queued. */
int tusk_ws_send(tusk_ws_t *ws, int opcode, const void *data, size_t len);
/* Streams a message in fragments: opcode is the message's (TEXT or BINARY)
 * on every call, fin 1 on the last. Each call queues one frame; a
 * compressed message is compressed per fragment (sync flush). Control
 * frames may be sent between fragments; tusk_ws_send may not. Text is
 * checked across fragments (a character may be split) and must be
 * complete at fin. Returns as tusk_ws_send. */
int tusk_ws_send_fragment(tusk_ws_t *ws, int opcode, const void *data, size_t len, int fin);
/* Queues a ping / an unsolicited pong; len <= 125 (else -EINVAL).
 * TUSK_ECLOSED once we sent a close. */
int tusk_ws_ping(tusk_ws_t *ws, const void *data, size_t len);
int tusk_ws_pong(tusk_ws_t *ws, const void *data, size_t len);
/* Queues our close: code 0 sends none (reason must then be empty), else a
 * code that may be sent (1000-1003, 1007-1013, 3000-4999) and a UTF-8
 * reason of at most 123 bytes (-EINVAL otherwise). Later sends fail with
 * TUSK_ECLOSED; messages still arriving are delivered until the peer's
 * close, which makes the engine done. TUSK_ECLOSED if already sent. */
int tusk_ws_close(tusk_ws_t *ws, int code, const char *reason, size_t len);

/* Output: bytes queued for the peer, in order. The caller writes them and
 * consumes what was written; tusk_ws_output_len is the backlog a server
 * compares with its high and low water marks. When the backlog reaches 0
 * the buffer is freed. */
size_t tusk_ws_output_len(const tusk_ws_t *ws);
/* The queued bytes (NULL if none); valid until the next call on ws. */
const void *tusk_ws_output(const tusk_ws_t *ws, size_t *len);
/* Drops the first n queued bytes (n <= tusk_ws_output_len). */
void tusk_ws_output_consume(tusk_ws_t *ws, size_t n);
/* Moves every queued byte to the end of dst; when dst is empty the buffers
 * are swapped (no copy), so a write request can own them. 0 or TUSK_ENOMEM
 * (then nothing moved). */
int tusk_ws_output_take(tusk_ws_t *ws, tusk_buf_t *dst);

/* 1 when the transport should be closed once the output is written: both
 * closes exchanged, or the engine failed. */
int tusk_ws_done(const tusk_ws_t *ws);
/* The code of the close we queued (TUSK_WS_NO_STATUS for an empty one), or
 * 0 if none yet. */
int tusk_ws_close_sent(const tusk_ws_t *ws);
/* The code of the peer's close (TUSK_WS_NO_STATUS for an empty one), or 0. */
int tusk_ws_close_received(const tusk_ws_t *ws);

/* ---- UTF-8 -----------------------------------------------------------------
 * An incremental validator: state 0 to start, feed any split, the text is
 * valid iff no call returned TUSK_WS_UTF8_REJECT and the last returned 0
 * (TUSK_WS_UTF8_ACCEPT). Rejects overlong forms, surrogates (U+D800-DFFF)
 * and code points above U+10FFFF as soon as the offending byte is seen.
 * REJECT is sticky. */
#define TUSK_WS_UTF8_ACCEPT 0u
#define TUSK_WS_UTF8_REJECT 1u
uint32_t tusk_ws_utf8_check(uint32_t state, const void *data, size_t len);

#endif
