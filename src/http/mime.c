#include "http/mime.h"

#include <string.h>
#include <strings.h>

typedef struct {
  const char *ext;
  const char *type;
  int compressible;
} mime_t;

static const mime_t mimes[] = {
    {"html", "text/html; charset=utf-8", 1},
    {"htm", "text/html; charset=utf-8", 1},
    {"css", "text/css; charset=utf-8", 1},
    {"js", "text/javascript; charset=utf-8", 1},
    {"mjs", "text/javascript; charset=utf-8", 1},
    {"json", "application/json", 1},
    {"map", "application/json", 1},
    {"txt", "text/plain; charset=utf-8", 1},
    {"csv", "text/csv; charset=utf-8", 1},
    {"xml", "application/xml", 1},
    {"svg", "image/svg+xml", 1},
    {"ico", "image/vnd.microsoft.icon", 1},
    {"png", "image/png", 0},
    {"jpg", "image/jpeg", 0},
    {"jpeg", "image/jpeg", 0},
    {"gif", "image/gif", 0},
    {"webp", "image/webp", 0},
    {"avif", "image/avif", 0},
    {"woff", "font/woff", 0},
    {"woff2", "font/woff2", 0},
    {"ttf", "font/ttf", 1},
    {"otf", "font/otf", 1},
    {"eot", "application/vnd.ms-fontobject", 1},
    {"pdf", "application/pdf", 0},
    {"zip", "application/zip", 0},
    {"gz", "application/gzip", 0},
    {"wasm", "application/wasm", 1},
    {"mp4", "video/mp4", 0},
    {"webm", "video/webm", 0},
    {"mp3", "audio/mpeg", 0},
    {"ogg", "audio/ogg", 0},
    {"wav", "audio/wav", 0},
    {"md", "text/markdown; charset=utf-8", 1},
    {"webmanifest", "application/manifest+json", 1},
    {"rss", "application/rss+xml", 1},
    {"atom", "application/atom+xml", 1},
};

const char *tusk_mime_type(const char *path, int *compressible) {
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(slash ? slash : path, '.');
  if (compressible) *compressible = 0;
  if (dot && dot[1]) {
    for (size_t i = 0; i < sizeof mimes / sizeof mimes[0]; i++) {
      if (strcasecmp(dot + 1, mimes[i].ext) == 0) {
        if (compressible) *compressible = mimes[i].compressible;
        return mimes[i].type;
      }
    }
  }
  return "application/octet-stream";
}
