#include "http/response.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *tusk_http_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 203: return "Non-Authoritative Information";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 402: return "Payment Required";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 511: return "Network Authentication Required";
    default: return "";
  }
}

static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void tusk_http_date_format(time_t t, char out[32]) {
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(out, 32, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
           months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

const char *tusk_http_date_now(void) {
  static time_t last;
  static char buf[32];
  time_t now = time(NULL);
  if (now != last) {
    tusk_http_date_format(now, buf);
    last = now;
  }
  return buf;
}

time_t tusk_http_date_parse(const char *s, size_t len) {
  char tmp[40];
  if (len >= sizeof tmp || len < 29) return -1;
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  char wd[4], mon[4];
  int d, y, h, mi, se;
  if (sscanf(tmp, "%3s, %2d %3s %4d %2d:%2d:%2d GMT", wd, &d, mon, &y, &h, &mi, &se) != 7) return -1;
  int m = -1;
  for (int i = 0; i < 12; i++) {
    if (!strcasecmp(mon, months[i])) m = i;
  }
  if (m < 0) return -1;
  struct tm tm = {0};
  tm.tm_year = y - 1900;
  tm.tm_mon = m;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  return timegm(&tm);
}

void tusk_http_error_body(tusk_buf_t *out, int status) {
  tusk_buf_printf(out,
                  "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>"
                  "<body><h1>%d %s</h1><hr><p>tusk</p></body></html>\n",
                  status, tusk_http_reason(status), status, tusk_http_reason(status));
}
