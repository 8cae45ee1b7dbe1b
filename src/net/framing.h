/* Message framing for the byte-stream services of `tusk run`: pure
 * functions, no I/O.
 *
 *   raw   (tcp: and unix: services) bytes as they arrive, no message boundaries
 *   text  (text://)          a message is a line: up to "\n", a "\r" before
 *                            it is dropped; sending appends "\n"
 *   frame (frame://)         a 4-byte big-endian total length (the header
 *                            included) then the payload (Workerman's Frame) */
#ifndef TUSK_NET_FRAMING_H
#define TUSK_NET_FRAMING_H

#include <stddef.h>

#include "core/buf.h"

typedef enum { TUSK_FRAMING_RAW = 0, TUSK_FRAMING_TEXT, TUSK_FRAMING_FRAME } tusk_framing_t;

/* Looks for the next whole message at the start of in[0..len). Returns the
 * bytes it spans (> 0) with *msg and *msglen set to the payload (a pointer into
 * in), TUSK_AGAIN when more input is needed, TUSK_ELIMIT when the message
 * is (or, incomplete, already is) longer than max bytes, TUSK_EPROTO for a
 * frame header below 4. RAW returns everything there is as one message. */
int tusk_framing_next(tusk_framing_t kind, const char *in, size_t len, size_t max, const char **msg,
                      size_t *msglen);

/* Appends data framed for kind to out. Returns 0, TUSK_ENOMEM, or
 * TUSK_ELIMIT for a frame over 4 GiB. */
int tusk_framing_encode(tusk_framing_t kind, const char *data, size_t len, tusk_buf_t *out);

#endif
