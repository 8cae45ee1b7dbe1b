/* Error codes and small helpers shared by every module.
 *
 * Functions return int: 0 is success, TUSK_AGAIN means "would block / need
 * more input", any other negative value is an error (-errno or a TUSK_E*
 * code below). Low layers return errors; the layer that knows the request
 * or the operator logs them, once. */
#ifndef TUSK_CORE_COMMON_H
#define TUSK_CORE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define TUSK_AGAIN (-11000)      /* not an error: incomplete input / would block */
#define TUSK_EPROTO (-11001)     /* malformed protocol input */
#define TUSK_ELIMIT (-11002)     /* a configured limit was crossed */
#define TUSK_ETLS (-11003)       /* TLS failure: garbage, plain HTTP, failed handshake, renegotiation */
#define TUSK_ECLOSED (-11004)    /* the connection is closing: nothing more may be sent */
#define TUSK_ENOMEM (-12)        /* -ENOMEM */

#define TUSK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TUSK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TUSK_MAX(a, b) ((a) > (b) ? (a) : (b))

#if defined(__GNUC__)
#define TUSK_LIKELY(x) __builtin_expect(!!(x), 1)
#define TUSK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define TUSK_LIKELY(x) (x)
#define TUSK_UNLIKELY(x) (x)
#endif

#define TUSK_VERSION "0.1.0"

#endif
