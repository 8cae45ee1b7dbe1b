/* MIME type of a file name by its extension. Returns a static string;
 * "application/octet-stream" when unknown. Safe anywhere. Whether a type
 * is worth compressing is tusk_compress_type_ok()'s to say. */
#ifndef TUSK_HTTP_MIME_H
#define TUSK_HTTP_MIME_H

const char *tusk_mime_type(const char *path);

#endif
