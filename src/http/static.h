/* Request routing against the document root, and static file responses.
 *
 * tusk_path_normalize() is pure: it percent-decodes a request path and
 * resolves "." and ".." segments. tusk_route() maps a normalized path to a
 * static file, a PHP script (with PATH_INFO), a redirect or an error, never
 * leaving the document root: files are opened with openat2(RESOLVE_BENEATH)
 * relative to the root's descriptor, so neither ".." nor a symlink can
 * escape it unless allow_symlinks is set. */
#ifndef TUSK_HTTP_STATIC_H
#define TUSK_HTTP_STATIC_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "core/buf.h"

typedef struct tusk_docroot_s {
  int fd;                 /* O_PATH descriptor of the root */
  const char *path;       /* absolute */
  size_t path_len;
  const char *front_controller; /* relative script, or NULL */
  const char *worker_file;      /* worker mode: absolute worker script, or NULL */
  const char *worker_name;      /* its SCRIPT_NAME */
  const char *index_files;      /* space separated */
  int allow_symlinks;
} tusk_docroot_t;

typedef enum {
  TUSK_ROUTE_ERROR = 0,
  TUSK_ROUTE_STATIC,
  TUSK_ROUTE_PHP,
  TUSK_ROUTE_REDIRECT,
} tusk_route_kind_t;

typedef struct tusk_route_s {
  tusk_route_kind_t kind;
  int status;                 /* ERROR: the HTTP status */
  int fd;                     /* STATIC: open file, the caller closes it */
  struct stat st;             /* STATIC */
  char file[PATH_MAX];        /* STATIC/PHP: absolute file name */
  char script_name[PATH_MAX]; /* PHP: URL path of the script */
  char path_info[PATH_MAX];   /* PHP: the rest of the path, may be "" */
} tusk_route_t;

/* Decodes raw[0..len) (the path part of a request target, no query) into
 * out. Returns the output length, or -400 for malformed escapes, NUL bytes
 * or ".." above the root, or -414 when it does not fit in outcap. */
int tusk_path_normalize(const char *raw, size_t len, char *out, size_t outcap);

/* Routes a normalized path. Fills r; r->fd is -1 unless kind is STATIC. */
void tusk_route(const tusk_docroot_t *dr, const char *path, tusk_route_t *r);

/* A small cache of routes that resolved to an existing PHP script, so a
 * busy endpoint does not cost three system calls per request to find its
 * script again (like nginx's open_file_cache). Entries live ttl_ms; a
 * deleted script can therefore still be routed to for that long. Routes
 * to static files are never cached, nor front-controller fallbacks in
 * classic mode; in worker mode every path routed to the worker script is
 * (a static file created at such a path is served once it expires). */
typedef struct tusk_route_cache_s tusk_route_cache_t;

/* Returns NULL when ttl_ms is 0 (no cache) or memory is short. */
tusk_route_cache_t *tusk_route_cache_create(uint64_t ttl_ms);
void tusk_route_cache_destroy(tusk_route_cache_t *rc);

/* Routes path like tusk_route(), answering from the cache when it can. */
void tusk_route_cached(tusk_route_cache_t *rc, const tusk_docroot_t *dr, const char *path, uint64_t now_ms,
                       tusk_route_t *r);

/* Conditional and range request headers (NULL when absent). */
typedef struct tusk_static_req_s {
  const char *if_none_match;
  size_t if_none_match_len;
  const char *if_modified_since;
  size_t if_modified_since_len;
  const char *range;
  size_t range_len;
  const char *if_range;
  size_t if_range_len;
  const char *etag_suffix; /* "-br" for an encoded variant (inside the quotes), or NULL */
} tusk_static_req_t;

/* Decides the response for a static file: 200, 206, 304 or 416. Appends
 * the status-specific headers (ETag, Last-Modified, Content-Range,
 * Accept-Ranges, Content-Type, Cache-Control when cache_control is not
 * NULL) to head (without Content-Length) and sets the byte range of the
 * body to send (*len is 0 for 304/416). */
int tusk_static_prepare(const struct stat *st, const char *file, const tusk_static_req_t *q,
                        const char *cache_control, tusk_buf_t *head, off_t *off, size_t *len);

#endif
