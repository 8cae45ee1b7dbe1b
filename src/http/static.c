#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "http/static.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "http/mime.h"
#include "http/response.h"

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int tusk_path_normalize(const char *raw, size_t len, char *out, size_t outcap) {
  if (len == 0 || raw[0] != '/') return -400;
  if (len >= PATH_MAX) return -414;
  /* 1. Percent-decode. A decoded '/' separates segments like a literal one,
   * so "%2e%2e%2f" is resolved exactly like "../". */
  char dec[PATH_MAX];
  size_t dl = 0;
  for (size_t i = 0; i < len; i++) {
    int c = (unsigned char)raw[i];
    if (c == '%') {
      if (i + 2 >= len) return -400;
      int h = hexval(raw[i + 1]), l = hexval(raw[i + 2]);
      if (h < 0 || l < 0) return -400;
      c = h * 16 + l;
      i += 2;
    }
    if (c == 0) return -400;
    dec[dl++] = (char)c;
  }
  /* 2. Resolve empty, "." and ".." segments; ".." above the root is an error. */
  size_t o = 0;
  size_t i = 0;
  int trailing = 0;
  while (i < dl) {
    while (i < dl && dec[i] == '/') i++;
    size_t s = i;
    while (i < dl && dec[i] != '/') i++;
    size_t sl = i - s;
    trailing = (i >= dl) ? (sl == 0) : 0;
    if (sl == 0) continue;
    if (sl == 1 && dec[s] == '.') {
      trailing = i >= dl;
      continue;
    }
    if (sl == 2 && dec[s] == '.' && dec[s + 1] == '.') {
      if (o == 0) return -400;
      while (o > 0 && out[o - 1] != '/') o--;
      if (o > 0) o--;
      trailing = i >= dl;
      continue;
    }
    if (o + 1 + sl + 2 >= outcap) return -414;
    out[o++] = '/';
    memcpy(out + o, dec + s, sl);
    o += sl;
  }
  if (dl > 0 && dec[dl - 1] == '/') trailing = 1;
  if (o == 0) {
    out[o++] = '/';
  } else if (trailing) {
    out[o++] = '/';
  }
  out[o] = '\0';
  return (int)o;
}

static int open_beneath(const tusk_docroot_t *dr, const char *rel, int flags) {
  if (rel[0] == '\0') rel = ".";
  if (dr->allow_symlinks) return openat(dr->fd, rel, flags | O_CLOEXEC);
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (unsigned long long)(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  long fd = syscall(SYS_openat2, dr->fd, rel, &how, sizeof how);
  if (fd >= 0 || errno != EXDEV) return (int)fd;
  /* An absolute symlink (deploy tools make them) is refused by
   * RESOLVE_BENEATH even when it points inside the root: resolve it and
   * accept it only if the real file is under the root. */
  int f = openat(dr->fd, rel, flags | O_CLOEXEC);
  if (f < 0) return -1;
  char link[64], real[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", f);
  ssize_t n = readlink(link, real, sizeof real - 1);
  if (n > 0) {
    real[n] = '\0';
    if ((size_t)n >= dr->path_len && !strncmp(real, dr->path, dr->path_len) &&
        (real[dr->path_len] == '/' || real[dr->path_len] == '\0'))
      return f;
  }
  close(f);
  errno = EXDEV;
  return -1;
}

static int ends_with(const char *s, size_t n, const char *suffix) {
  size_t l = strlen(suffix);
  return n >= l && strncasecmp(s + n - l, suffix, l) == 0;
}

/* Extensions whose source must never be sent as a static file. */
static int is_php_source(const char *name, size_t n) {
  static const char *exts[] = {".php", ".phtml", ".phar", ".phps", ".php3", ".php4",
                               ".php5", ".php7", ".php8", ".inc.php"};
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
    if (ends_with(name, n, exts[i])) return 1;
  }
  return 0;
}

/* dst = src[0..len), cut to fit cap with its NUL (no printf on the request path). */
static void copy_cut(char *dst, size_t cap, const char *src, size_t len) {
  if (len >= cap) len = cap - 1;
  memcpy(dst, src, len);
  dst[len] = '\0';
}

static void set_php(const tusk_docroot_t *dr, tusk_route_t *r, const char *script, size_t script_len,
                    const char *path_info) {
  r->kind = TUSK_ROUTE_PHP;
  r->fd = -1;
  if (dr->worker_file) {
    /* Worker mode: the worker script handles every PHP request. */
    copy_cut(r->script_name, sizeof r->script_name, dr->worker_name, strlen(dr->worker_name));
    copy_cut(r->file, sizeof r->file, dr->worker_file, strlen(dr->worker_file));
    r->path_info[0] = '\0';
    return;
  }
  snprintf(r->script_name, sizeof r->script_name, "%.*s", (int)script_len, script);
  snprintf(r->file, sizeof r->file, "%s%s", dr->path, r->script_name);
  snprintf(r->path_info, sizeof r->path_info, "%s", path_info);
}

static void not_found(const tusk_docroot_t *dr, tusk_route_t *r) {
  if (dr->worker_file) {
    set_php(dr, r, "", 0, "");
    return;
  }
  if (dr->front_controller) {
    char sn[PATH_MAX];
    snprintf(sn, sizeof sn, "/%s", dr->front_controller);
    set_php(dr, r, sn, strlen(sn), "");
    return;
  }
  r->kind = TUSK_ROUTE_ERROR;
  r->status = 404;
}

void tusk_route(const tusk_docroot_t *dr, const char *path, tusk_route_t *r) {
  r->kind = TUSK_ROUTE_ERROR;
  r->status = 404;
  r->fd = -1;
  r->path_info[0] = '\0';
  size_t plen = strlen(path);

  /* Hidden files and folders (".git", ".env", ".htaccess") are never
   * served or run, except /.well-known/. */
  for (const char *p = path; (p = strstr(p, "/.")) != NULL; p++) {
    if (strncmp(p, "/.well-known/", 13) != 0 && strcmp(p, "/.well-known") != 0) {
      r->status = 404;
      return;
    }
  }

  /* "/app.php/extra/path": the first segment that ends in .php and is a
   * regular file is the script; the rest is PATH_INFO. */
  for (const char *seg = path + 1;;) {
    const char *end = strchr(seg, '/');
    if (!end) break;
    if (ends_with(path, (size_t)(end - path), ".php")) {
      char rel[PATH_MAX];
      snprintf(rel, sizeof rel, "%.*s", (int)(end - path - 1), path + 1);
      int fd = open_beneath(dr, rel, O_PATH);
      if (fd >= 0) {
        struct stat st;
        int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
        close(fd);
        if (ok) {
          set_php(dr, r, path, (size_t)(end - path), end);
          return;
        }
      }
    }
    seg = end + 1;
  }

  int fd = open_beneath(dr, path + 1, O_RDONLY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == EACCES || errno == EPERM) {
      r->status = 403;
      return;
    }
    if (errno == EXDEV || errno == ELOOP) {
      r->status = 404; /* a link out of the root: as if absent */
      return;
    }
    if (plen > 1 && path[plen - 1] == '/' && errno == ENOTDIR) {
      r->status = 404;
      return;
    }
    not_found(dr, r);
    return;
  }
  if (fstat(fd, &r->st) != 0) {
    close(fd);
    r->status = 500;
    return;
  }
  if (S_ISDIR(r->st.st_mode)) {
    close(fd);
    if (path[plen - 1] != '/') {
      r->kind = TUSK_ROUTE_REDIRECT;
      snprintf(r->file, sizeof r->file, "%s/", path);
      return;
    }
    /* Index files, in order. */
    const char *p = dr->index_files;
    while (p && *p) {
      while (*p == ' ') p++;
      const char *e = strchr(p, ' ');
      size_t n = e ? (size_t)(e - p) : strlen(p);
      if (n == 0) break;
      char rel[PATH_MAX];
      snprintf(rel, sizeof rel, "%s%.*s", path + 1, (int)n, p);
      int ifd = open_beneath(dr, rel, O_RDONLY | O_NONBLOCK);
      if (ifd >= 0) {
        struct stat st;
        if (fstat(ifd, &st) == 0 && S_ISREG(st.st_mode)) {
          char full[PATH_MAX + 2];
          snprintf(full, sizeof full, "/%s", rel);
          if (ends_with(rel, strlen(rel), ".php")) {
            close(ifd);
            set_php(dr, r, full, strlen(full), "");
          } else {
            r->kind = TUSK_ROUTE_STATIC;
            r->fd = ifd;
            r->st = st;
            snprintf(r->file, sizeof r->file, "%s%s", dr->path, full);
          }
          return;
        }
        close(ifd);
      }
      p += n;
    }
    if (dr->front_controller || dr->worker_file) {
      not_found(dr, r);
    } else {
      r->status = 403;
    }
    return;
  }
  if (!S_ISREG(r->st.st_mode)) {
    close(fd);
    r->status = 403;
    return;
  }
  if (ends_with(path, plen, ".php")) {
    close(fd);
    set_php(dr, r, path, plen, "");
    return;
  }
  if (is_php_source(path, plen)) {
    close(fd);
    r->status = 403;
    return;
  }
  r->kind = TUSK_ROUTE_STATIC;
  r->fd = fd;
  snprintf(r->file, sizeof r->file, "%s%s", dr->path, path);
}

static int etag_matches(const char *list, size_t n, const char *etag) {
  size_t el = strlen(etag);
  size_t i = 0;
  while (i < n) {
    while (i < n && (list[i] == ' ' || list[i] == '\t' || list[i] == ',')) i++;
    if (i < n && list[i] == '*') return 1;
    size_t start = i;
    while (i < n && list[i] != ',') i++;
    size_t end = i;
    while (end > start && (list[end - 1] == ' ' || list[end - 1] == '\t')) end--;
    const char *t = list + start;
    size_t tl = end - start;
    if (tl > 2 && t[0] == 'W' && t[1] == '/') t += 2, tl -= 2; /* weak comparison */
    const char *e = etag;
    size_t l = el;
    if (l > 2 && e[0] == 'W' && e[1] == '/') e += 2, l -= 2;
    if (tl == l && memcmp(t, e, l) == 0) return 1;
  }
  return 0;
}

/* Parses "bytes=a-b", "bytes=a-", "bytes=-n" (the first range only).
 * Returns 1 with the range, 0 to ignore the header, -1 unsatisfiable. */
static int parse_range(const char *s, size_t n, off_t size, off_t *off, size_t *len) {
  if (n < 7 || strncasecmp(s, "bytes=", 6) != 0) return 0;
  const char *p = s + 6, *end = s + n;
  while (p < end && *p == ' ') p++;
  unsigned long long a = 0, b = 0;
  int has_a = 0, has_b = 0;
  while (p < end && *p >= '0' && *p <= '9') {
    if (a > (1ULL << 60)) return 0;
    a = a * 10 + (unsigned)(*p++ - '0');
    has_a = 1;
  }
  if (p >= end || *p != '-') return 0;
  p++;
  while (p < end && *p >= '0' && *p <= '9') {
    if (b > (1ULL << 60)) return 0;
    b = b * 10 + (unsigned)(*p++ - '0');
    has_b = 1;
  }
  while (p < end && *p == ' ') p++;
  if (p < end && *p != ',') return 0;
  if (!has_a && !has_b) return 0;
  /* Compare unsigned: a position past 2^63 must not turn negative. */
  unsigned long long usize = (unsigned long long)size;
  if (!has_a) { /* suffix range */
    if (b == 0) return -1;
    if (b > usize) b = usize;
    *off = size - (off_t)b;
    *len = (size_t)b;
    return size == 0 ? -1 : 1;
  }
  if (has_b && b < a) return 0;
  if (a >= usize) return -1;
  if (!has_b || b >= usize) b = usize - 1;
  *off = (off_t)a;
  *len = (size_t)(b - a + 1);
  return 1;
}

int tusk_static_prepare(const struct stat *st, const char *file, const tusk_static_req_t *q,
                        const char *cache_control, tusk_buf_t *head, off_t *off, size_t *len) {
  char etag[96], lm[32];
  snprintf(etag, sizeof etag, "\"%llx-%llx%s\"", (unsigned long long)st->st_mtime,
           (unsigned long long)st->st_size, q->etag_suffix ? q->etag_suffix : "");
  tusk_http_date_format(st->st_mtime, lm);
  *off = 0;
  *len = (size_t)st->st_size;

  int not_modified = 0;
  if (q->if_none_match) {
    not_modified = etag_matches(q->if_none_match, q->if_none_match_len, etag);
  } else if (q->if_modified_since) {
    time_t t = tusk_http_date_parse(q->if_modified_since, q->if_modified_since_len);
    not_modified = t != -1 && st->st_mtime <= t;
  }
  tusk_buf_printf(head, "ETag: %s\r\nLast-Modified: %s\r\n", etag, lm);
  if (cache_control) tusk_buf_printf(head, "Cache-Control: %s\r\n", cache_control);
  if (not_modified) {
    *len = 0;
    return 304;
  }
  tusk_buf_printf(head, "Content-Type: %s\r\nAccept-Ranges: bytes\r\n", tusk_mime_type(file));
  if (q->range) {
    int use = 1;
    if (q->if_range) {
      /* If-Range with a different validator means: send it all. */
      use = (q->if_range_len == strlen(etag) && !memcmp(q->if_range, etag, q->if_range_len)) ||
            (q->if_range_len == strlen(lm) && !memcmp(q->if_range, lm, q->if_range_len));
    }
    if (use) {
      int pr = parse_range(q->range, q->range_len, st->st_size, off, len);
      if (pr < 0) {
        tusk_buf_printf(head, "Content-Range: bytes */%lld\r\n", (long long)st->st_size);
        *off = 0;
        *len = 0;
        return 416;
      }
      if (pr > 0) {
        tusk_buf_printf(head, "Content-Range: bytes %lld-%lld/%lld\r\n", (long long)*off,
                        (long long)(*off + (off_t)*len - 1), (long long)st->st_size);
        return 206;
      }
    }
  }
  return 200;
}

#define ROUTE_CACHE_SLOTS 256

typedef struct {
  uint64_t expires;
  char *path; /* NULL when empty */
  char *script_name;
} route_entry_t;

struct tusk_route_cache_s {
  uint64_t ttl_ms;
  route_entry_t slots[ROUTE_CACHE_SLOTS];
};

tusk_route_cache_t *tusk_route_cache_create(uint64_t ttl_ms) {
  if (ttl_ms == 0) return NULL;
  tusk_route_cache_t *rc = calloc(1, sizeof *rc);
  if (rc) rc->ttl_ms = ttl_ms;
  return rc;
}

void tusk_route_cache_destroy(tusk_route_cache_t *rc) {
  if (!rc) return;
  for (size_t i = 0; i < ROUTE_CACHE_SLOTS; i++) {
    free(rc->slots[i].path);
    free(rc->slots[i].script_name);
  }
  free(rc);
}

static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

/* dst = a b, truncated to cap like snprintf ("%s%s"), without printf: the
 * cached route is on every PHP request's path. */
static void cat2(char *dst, size_t cap, const char *a, const char *b) {
  size_t al = strnlen(a, cap - 1);
  memcpy(dst, a, al);
  size_t bl = strnlen(b, cap - 1 - al);
  memcpy(dst + al, b, bl);
  dst[al + bl] = '\0';
}

void tusk_route_cached(tusk_route_cache_t *rc, const tusk_docroot_t *dr, const char *path, uint64_t now_ms,
                       tusk_route_t *r) {
  if (!rc) {
    tusk_route(dr, path, r);
    return;
  }
  route_entry_t *e = &rc->slots[fnv1a(path) % ROUTE_CACHE_SLOTS];
  if (e->path && e->expires > now_ms && strcmp(e->path, path) == 0) {
    r->kind = TUSK_ROUTE_PHP;
    r->fd = -1;
    r->status = 0;
    if (dr->worker_file) {
      set_php(dr, r, "", 0, "");
      return;
    }
    cat2(r->script_name, sizeof r->script_name, e->script_name, "");
    cat2(r->file, sizeof r->file, dr->path, e->script_name);
    cat2(r->path_info, sizeof r->path_info, path + strlen(e->script_name), "");
    return;
  }
  tusk_route(dr, path, r);
  /* Only a script named by the path itself (with or without PATH_INFO),
   * or, in worker mode, any path the worker script handles (a static file
   * created there later is served once the entry expires). */
  size_t sl = strlen(r->script_name);
  if (r->kind == TUSK_ROUTE_PHP && (dr->worker_file || (strncmp(path, r->script_name, sl) == 0 &&
                                                        strcmp(path + sl, r->path_info) == 0))) {
    char *p = strdup(path), *sn = strdup(r->script_name);
    if (!p || !sn) {
      free(p);
      free(sn);
      return;
    }
    free(e->path);
    free(e->script_name);
    e->path = p;
    e->script_name = sn;
    e->expires = now_ms + rc->ttl_ms;
  }
}
