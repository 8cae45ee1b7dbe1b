"""HTTP/1.1 protocol behaviour through raw sockets: keep-alive, pipelining,
chunked bodies, Expect, HEAD, methods, request-target forms, limits,
timeouts, smuggling defences and robustness against garbage."""
import email.utils
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import threading
import time

import pytest

from conftest import TEST_MODE, Server, parse_responses, raw_request

DATE_RE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")


class Conn:
    """One client connection that reads exactly one response at a time."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        b = self.sock.recv(65536)
        if not b:
            raise EOFError("connection closed; buffered: %r" % self.buf[:200])
        self.buf += b

    def read_response(self, head_request=False):
        """Returns (status, headers, body, raw_head) of the next response."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        body = b""
        if head_request or status in (100, 101, 103, 204, 304):
            return status, headers, body, head
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while b"\r\n" not in self.buf:
                        self._fill()
                    _, _, self.buf = self.buf.partition(b"\r\n")
                    break
                while len(self.buf) < size + 2:
                    self._fill()
                assert self.buf[size:size + 2] == b"\r\n"
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
        else:
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            body, self.buf = self.buf, b""
        return status, headers, body, head

    def closed_by_server(self, timeout=3.0):
        """True when the server closes the connection within timeout without
        sending anything more."""
        self.sock.settimeout(timeout)
        try:
            b = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        assert b == b"", "unexpected bytes: %r" % b[:200]
        return True

    def close(self):
        self.sock.close()


def get(path, extra=b"", version=b"1.1"):
    return b"GET " + path.encode() + b" HTTP/" + version + b"\r\nHost: localhost\r\n" + extra + b"\r\n"


def post(path, body, ctype=b"text/plain", method=b"POST"):
    return (method + b" " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nContent-Type: " + ctype +
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def chunked(body_parts):
    out = b""
    for p in body_parts:
        out += b"%x\r\n" % len(p) + p + b"\r\n"
    return out + b"0\r\n\r\n"


@pytest.fixture
def server(start_server, php_case):
    return start_server(php_case("http"))


@pytest.fixture
def checked_server():
    """Like start_server, but the test itself checks how the master ended
    (stop_cleanly), so that a crash fails the test that caused it rather
    than the fixture's teardown."""
    servers = []

    def start(docroot, *args, env=None, workers=2):
        s = Server(docroot, args, env=env, workers=workers)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()
        shutil.rmtree(s.logdir, ignore_errors=True)


def stop_cleanly(s):
    rc = s.stop()
    assert rc in (0, -signal.SIGTERM, -signal.SIGKILL), "master exited with %s: %s" % (rc, s.log())


def until_closed(port, data, timeout=5.0):
    """raw_request that also reports how long the server took to close."""
    t0 = time.time()
    out = raw_request(port, data, timeout=timeout)
    return out, time.time() - t0


TEST_MODE = os.environ.get("TUSK_TEST_MODE", "pooled")
# What a crashed master (glibc abort) or a crashed worker (the master's
# report, in direct mode the HTTP stack runs in the workers) leaves in the log.
CRASH_RE = re.compile(r"killed by signal|double free|corrupted|Segmentation fault|core dumped|AddressSanitizer")


def assert_no_crash(s):
    assert s.proc.poll() is None, s.log()
    m = CRASH_RE.search(s.log())
    assert not m, "crash: " + s.log()


def assert_alive(s):
    assert_no_crash(s)
    out = raw_request(s.port, get("/echo.php?alive=1", b"Connection: close\r\n"))
    rs = parse_responses(out)
    assert len(rs) == 1 and rs[0][0] == 200, out[:300]
    assert json.loads(rs[0][2])["get"] == {"alive": "1"}


# ---- connection management ------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(server):
    c = Conn(server.port)
    ports = set()
    for i in range(4):
        c.send(get("/echo.php?i=%d" % i))
        st, h, body, _ = c.read_response()
        assert st == 200
        assert h.get("connection", "").lower() != "close"
        d = json.loads(body)
        assert d["get"] == {"i": str(i)}
        ports.add(d["remote_port"])
        c.send(get("/hello.txt"))
        st, h, body, _ = c.read_response()
        assert (st, body) == (200, b"plain static text\n")
    # The same TCP connection all along.
    assert len(ports) == 1
    c.close()


def test_http10_closes_unless_keep_alive(server):
    c = Conn(server.port)
    c.send(b"GET /echo.php HTTP/1.0\r\n\r\n")
    st, h, body, _ = c.read_response()
    assert st == 200
    assert json.loads(body)["protocol"] == "HTTP/1.0"
    assert c.closed_by_server(3)
    c.close()

    c = Conn(server.port)
    c.send(b"GET /hello.txt HTTP/1.0\r\n\r\n")
    st, h, body, _ = c.read_response()
    assert (st, body) == (200, b"plain static text\n")
    assert c.closed_by_server(3)
    c.close()

    c = Conn(server.port)
    for path in ("/echo.php?a=1", "/hello.txt", "/echo.php?a=2"):
        c.send(b"GET " + path.encode() + b" HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        st, h, body, _ = c.read_response()
        assert st == 200
        assert h.get("connection", "").lower() == "keep-alive"
        assert "content-length" in h
    c.close()


def test_client_closing_mid_request_does_not_crash_the_server(checked_server, php_case):
    server = checked_server(php_case("http"))
    # A head cut off after the request line, after some fields, and a body
    # cut off: the client goes away each time.
    for data in (b"GET /echo.php HTTP/1.1\r\n", b"GET /echo.php HTTP/1.1\r\nHost: localhost\r\n",
                 b"GET /echo.php HTT", b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc",
                 b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"):
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=3)
            sock.sendall(data)
            time.sleep(0.05)
            sock.close()
        time.sleep(0.05)
        assert server.proc.poll() is None, "master died after %r: %s" % (data, server.log())
        assert not CRASH_RE.search(server.log()), "crash after %r: %s" % (data, server.log())
    assert_alive(server)
    stop_cleanly(server)


def test_http11_connection_close_is_honoured(server):
    c = Conn(server.port)
    c.send(get("/echo.php", b"Connection: close\r\n"))
    st, h, body, _ = c.read_response()
    assert st == 200 and h["connection"].lower() == "close"
    assert c.closed_by_server(3)
    c.close()


def test_pipelining_mixed_static_and_php_in_order(server):
    c = Conn(server.port)
    c.send(get("/echo.php?n=1") + get("/hello.txt") + post("/echo.php?n=3", b"third body") +
           get("/missing.txt") + get("/echo.php?n=5"))
    st, _, body, _ = c.read_response()
    assert st == 200 and json.loads(body)["get"] == {"n": "1"}
    st, _, body, _ = c.read_response()
    assert (st, body) == (200, b"plain static text\n")
    st, _, body, _ = c.read_response()
    d = json.loads(body)
    assert st == 200 and d["get"] == {"n": "3"} and d["method"] == "POST" and d["input"] == "third body"
    st, _, _, _ = c.read_response()
    assert st == 404
    st, _, body, _ = c.read_response()
    assert st == 200 and json.loads(body)["get"] == {"n": "5"}
    c.close()
    # A bad request behind a good one: the good one is answered first.
    out = raw_request(server.port, get("/echo.php?n=1") + get("/hello.txt") + b"GARBAGE\r\n\r\n" + get("/hello.txt"))
    rs = parse_responses(out)
    assert [r[0] for r in rs] == [200, 200, 400], out[:600]
    assert json.loads(rs[0][2])["get"] == {"n": "1"}


# ---- bodies ------------------------------------------------------------------


def test_chunked_request_body_reaches_post_and_input(server):
    c = Conn(server.port)
    body = chunked([b"a=1&b=hel", b"lo+wor", b"ld&c[]=x"])
    c.send(b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + body)
    st, _, resp, _ = c.read_response()
    assert st == 200
    d = json.loads(resp)
    assert d["post"] == {"a": "1", "b": "hello world", "c": ["x"]}
    assert d["input"] == "a=1&b=hello+world&c[]=x"
    assert d["content_length"] == str(len("a=1&b=hello+world&c[]=x"))

    # Binary-ish body, sent in pieces, with a chunk extension and a trailer.
    payload = bytes(range(32, 127)) * 50
    c.send(b"PUT /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
    time.sleep(0.05)
    c.send(b"%x;name=value\r\n" % 1000 + payload[:1000] + b"\r\n")
    time.sleep(0.05)
    c.send(b"%x\r\n" % (len(payload) - 1000) + payload[1000:] + b"\r\n0\r\nX-Trailer: 1\r\n\r\n")
    st, _, resp, _ = c.read_response()
    assert st == 200
    d = json.loads(resp)
    assert d["method"] == "PUT" and d["input"] == payload.decode()
    c.close()


def test_chunked_response_from_php_flush(server):
    c = Conn(server.port)
    t0 = time.time()
    c.send(get("/flush.php"))
    while b"first\n" not in c.buf:
        c._fill()
    t_first = time.time() - t0
    head = c.buf.split(b"\r\n\r\n")[0].lower()
    assert b"transfer-encoding: chunked" in head
    assert b"content-length" not in head
    # The first piece arrived while PHP slept, well before the second.
    assert b"second" not in c.buf
    st, h, body, _ = c.read_response()
    assert st == 200 and body == b"first\nsecond\n"
    assert time.time() - t0 - t_first >= 0.2, t_first
    # The connection is still usable after the chunked response.
    c.send(get("/hello.txt"))
    assert c.read_response()[2] == b"plain static text\n"
    c.close()


def test_flush_on_http10_is_close_delimited(server):
    out = raw_request(server.port, b"GET /flush.php HTTP/1.0\r\n\r\n", timeout=5)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"chunked" not in head.lower()
    assert body == b"first\nsecond\n"


def test_expect_100_continue(server):
    c = Conn(server.port)
    c.send(b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
           b"Content-Length: 11\r\nExpect: 100-continue\r\n\r\n")
    st, _, _, head = c.read_response()
    assert st == 100 and head == b"HTTP/1.1 100 Continue"
    c.send(b"hello world")
    st, _, body, _ = c.read_response()
    assert st == 200 and json.loads(body)["input"] == "hello world"
    # Also with a chunked body.
    c.send(b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
           b"Expect: 100-continue\r\n\r\n")
    st, _, _, _ = c.read_response()
    assert st == 100
    c.send(chunked([b"abc", b"def"]))
    st, _, body, _ = c.read_response()
    assert st == 200 and json.loads(body)["input"] == "abcdef"
    c.close()


def test_expect_100_continue_with_too_large_body_gets_413_without_100(start_server, php_case):
    s = start_server(php_case("http"), "--max-body-size", "100")
    c = Conn(s.port)
    c.send(b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 101\r\n"
           b"Expect: 100-continue\r\n\r\n")
    st, h, _, head = c.read_response()
    assert st == 413, head
    assert h["connection"].lower() == "close"
    assert c.closed_by_server(3)
    c.close()
    assert "413" in s.log()
    # At the limit the client is told to go on.
    c = Conn(s.port)
    c.send(b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n"
           b"Expect: 100-continue\r\n\r\n")
    assert c.read_response()[0] == 100
    c.send(b"x" * 100)
    st, _, body, _ = c.read_response()
    assert st == 200 and json.loads(body)["input"] == "x" * 100
    c.close()


# ---- HEAD, methods, targets ---------------------------------------------------------


def test_head_has_headers_but_no_body(server):
    c = Conn(server.port)
    c.send(get("/hello.txt"))
    st, gh, gbody, _ = c.read_response()
    assert st == 200
    c.send(b"HEAD /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
    st, hh, _, _ = c.read_response(head_request=True)
    assert st == 200
    assert hh["content-length"] == str(len(gbody)) == gh["content-length"]
    for k in ("content-type", "etag", "last-modified"):
        assert hh[k] == gh[k]
    # HEAD on a PHP script, then a GET: had any body followed the HEAD
    # response, it would be read here as the next status line.
    c.send(b"HEAD /echo.php HTTP/1.1\r\nHost: localhost\r\n\r\n")
    st, ph, _, _ = c.read_response(head_request=True)
    assert st == 200 and ph["content-type"] == "application/json"
    c.send(get("/fixed.php"))
    st, fg, body, _ = c.read_response()
    assert st == 200 and body == b"x" * 1234
    c.send(b"HEAD /fixed.php HTTP/1.1\r\nHost: localhost\r\n\r\n")
    st, fh, _, _ = c.read_response(head_request=True)
    assert st == 200 and fh["x-fixed"] == "yes"
    # PHP does not produce the body of a HEAD request, so the length may be
    # unknown; but it must not be announced as something it is not.
    assert fg["content-length"] == "1234"
    assert fh.get("content-length") in (None, "1234")
    c.send(b"HEAD /missing HTTP/1.1\r\nHost: localhost\r\n\r\n")
    st, _, _, _ = c.read_response(head_request=True)
    assert st == 404
    c.send(get("/hello.txt"))
    st, _, body, _ = c.read_response()
    assert (st, body) == (200, b"plain static text\n")
    c.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        c._fill()
    assert c.buf == b""
    c.close()


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY"])
def test_methods_reach_php_with_body(server, method):
    body = ("payload for %s \x01 é" % method).encode()
    c = Conn(server.port)
    c.send(post("/echo.php?m=1", body, method=method.encode()))
    st, _, resp, _ = c.read_response()
    assert st == 200
    d = json.loads(resp)
    assert d["method"] == method
    assert d["input"].encode() == body
    assert d["content_length"] == str(len(body))
    assert d["content_type"] == "text/plain"
    c.close()


def test_options_asterisk(server):
    c = Conn(server.port)
    c.send(b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n")
    st, h, _, _ = c.read_response()
    assert st in (200, 204)
    assert "GET" in h["allow"] and "POST" in h["allow"]
    c.send(get("/hello.txt"))
    assert c.read_response()[0] == 200
    c.close()
    out = raw_request(server.port, b"GET * HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert parse_responses(out)[0][0] == 400


def test_absolute_form_target(server):
    c = Conn(server.port)
    c.send(b"GET http://example.test/echo.php?q=1&r=two HTTP/1.1\r\nHost: example.test\r\n\r\n")
    st, _, body, _ = c.read_response()
    assert st == 200
    d = json.loads(body)
    assert d["get"] == {"q": "1", "r": "two"}
    assert d["query"] == "q=1&r=two"
    assert d["uri"] == "/echo.php?q=1&r=two"
    c.send(b"GET http://example.test/hello.txt HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert c.read_response()[2] == b"plain static text\n"
    c.close()


def test_absolute_form_without_path(start_server, php_case):
    # "http://host" and "http://host?q" have an empty path, which means "/"
    # (RFC 9110 4.2.3, RFC 9112 3.2.2).
    s = start_server(php_case("http"), "--index", "echo.php")
    c = Conn(s.port)
    c.send(b"GET http://example.test HTTP/1.1\r\nHost: example.test\r\n\r\n")
    st, _, body, _ = c.read_response()
    assert st == 200 and json.loads(body)["get"] == []
    c.send(b"GET http://example.test?q=1 HTTP/1.1\r\nHost: example.test\r\n\r\n")
    st, _, body, _ = c.read_response()
    assert st == 200 and json.loads(body)["get"] == {"q": "1"}
    c.close()


def test_date_and_server_headers(server):
    c = Conn(server.port)
    for req in (get("/echo.php"), get("/hello.txt"), get("/missing"), get("/flush.php")):
        c.send(req)
        st, h, _, _ = c.read_response()
        assert h["server"].lower().startswith("tusk")
        assert DATE_RE.match(h["date"]), h["date"]
        when = email.utils.parsedate_to_datetime(h["date"]).timestamp()
        assert abs(when - time.time()) < 5
    c.close()
    out = raw_request(server.port, b"BAD\r\n\r\n")
    st, h, _ = parse_responses(out)[0]
    assert st == 400 and DATE_RE.match(h["date"]) and "server" in h


# ---- limits ------------------------------------------------------------------


def head_of_size(n, path="/echo.php"):
    """A complete request head of exactly n bytes."""
    base = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nX-Pad: "
    pad = n - len(base) - 4
    assert pad > 0
    return base + b"p" * pad + b"\r\n\r\n"


def test_max_header_size(start_server, php_case):
    s = start_server(php_case("http"), "--max-header-size", "1024")
    c = Conn(s.port)
    c.send(head_of_size(1024))
    assert c.read_response()[0] == 200
    c.close()
    out, took = until_closed(s.port, head_of_size(1025))
    rs = parse_responses(out)
    assert [r[0] for r in rs] == [431], out[:300]
    assert took < 2.5
    # A head that never ends is cut off at the limit, not buffered.
    out, took = until_closed(s.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 300)
    assert parse_responses(out)[0][0] == 431 and took < 2.5
    assert re.search(r"\b431\b", s.log())
    assert_alive(s)


def test_max_headers(start_server, php_case):
    s = start_server(php_case("http"), "--max-headers", "10")
    def req(n):
        return b"GET /echo.php HTTP/1.1\r\nHost: localhost\r\n" + b"".join(
            b"X-H%d: v\r\n" % i for i in range(n - 1)) + b"\r\n"
    c = Conn(s.port)
    c.send(req(10))
    assert c.read_response()[0] == 200
    c.close()
    out, took = until_closed(s.port, req(11))
    assert [r[0] for r in parse_responses(out)] == [431] and took < 2.5
    assert re.search(r"\b431\b", s.log())
    assert_alive(s)


def test_max_uri(start_server, php_case):
    s = start_server(php_case("http"), "--max-uri", "100")
    base = "/echo.php?p="
    c = Conn(s.port)
    c.send(get(base + "a" * (100 - len(base))))
    st, _, body, _ = c.read_response()
    assert st == 200 and json.loads(body)["get"]["p"] == "a" * (100 - len(base))
    c.close()
    out, took = until_closed(s.port, get(base + "a" * (101 - len(base))))
    assert [r[0] for r in parse_responses(out)] == [414] and took < 2.5
    assert re.search(r"\b414\b", s.log())
    assert_alive(s)


def test_max_body_size_content_length_and_chunked(start_server, php_case):
    s = start_server(php_case("http"), "--max-body-size", "100")
    c = Conn(s.port)
    c.send(post("/echo.php", b"y" * 100))
    st, _, body, _ = c.read_response()
    assert st == 200 and json.loads(body)["input"] == "y" * 100
    c.send(b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" +
           chunked([b"z" * 60, b"z" * 40]))
    st, _, body, _ = c.read_response()
    assert st == 200 and json.loads(body)["input"] == "z" * 100
    c.close()

    out, took = until_closed(s.port, post("/echo.php", b"y" * 101))
    assert [r[0] for r in parse_responses(out)] == [413] and took < 2.5
    out, took = until_closed(s.port, b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + chunked([b"z" * 60, b"z" * 41]))
    assert [r[0] for r in parse_responses(out)] == [413] and took < 2.5
    # The 413 comes before the whole body is sent.
    c = Conn(s.port)
    c.send(b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n")
    assert c.read_response()[0] == 413
    c.close()
    assert len(re.findall(r"\b413\b", s.log())) >= 3
    assert_alive(s)


def test_header_timeout(checked_server, php_case):
    s = checked_server(php_case("http"), "--header-timeout", "1")
    t0 = time.time()
    out = raw_request(s.port, b"GET /echo.php HTTP/1.1\r\nHost: localhost\r\n", timeout=5)
    took = time.time() - t0
    rs = parse_responses(out)
    assert [r[0] for r in rs] == [408], out[:200]
    assert rs[0][1]["connection"].lower() == "close"
    assert 0.8 <= took < 3.0, took
    # Trickling header lines does not extend the deadline.
    c = Conn(s.port)
    t0 = time.time()
    c.send(b"GET /echo.php HTTP/1.1\r\n")
    answered = None
    for i in range(12):
        if select.select([c.sock], [], [], 0.2)[0]:
            answered = time.time() - t0
            break
        try:
            c.send(b"X-%d: y\r\n" % i)
        except OSError:
            break
    assert answered is not None and answered < 1.7, answered
    assert c.read_response()[0] == 408
    c.close()
    assert_alive(s)
    stop_cleanly(s)


def test_header_timeout_applies_to_later_requests_on_a_connection(checked_server, php_case):
    s = checked_server(php_case("http"), "--header-timeout", "1", "--idle-timeout", "5")
    c = Conn(s.port)
    c.send(get("/hello.txt"))
    assert c.read_response()[0] == 200
    time.sleep(0.3)
    t0 = time.time()
    c.send(b"GET /hello.txt HTTP/1.1\r\n")
    st = c.read_response()[0]
    assert st == 408 and 0.8 <= time.time() - t0 < 2.5, time.time() - t0
    assert c.closed_by_server(3)
    c.close()
    assert_alive(s)
    stop_cleanly(s)


def test_body_timeout(start_server, php_case):
    s = start_server(php_case("http"), "--body-timeout", "1")
    t0 = time.time()
    out = raw_request(s.port, b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc",
                      timeout=5)
    took = time.time() - t0
    rs = parse_responses(out)
    assert [r[0] for r in rs] == [408], out[:200]
    assert 0.8 <= took < 3.0, took
    # A chunked body that stalls, too.
    out = raw_request(s.port, b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nab", timeout=5)
    assert [r[0] for r in parse_responses(out)] == [408]
    assert_alive(s)


def test_timeouts_are_logged(checked_server, php_case):
    s = checked_server(php_case("http"), "--header-timeout", "1", "--body-timeout", "1")
    a = threading.Thread(target=raw_request, args=(s.port, b"GET /echo.php HTTP/1.1\r\nHost: localhost\r\n", 4))
    b = threading.Thread(target=raw_request, args=(
        s.port, b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc", 4))
    a.start()
    b.start()
    a.join()
    b.join()
    assert len(re.findall(r"\b408\b", s.log())) >= 2, "408 not logged: " + s.log()
    stop_cleanly(s)


def test_idle_timeout_closes_keep_alive_connection(start_server, php_case):
    s = start_server(php_case("http"), "--idle-timeout", "1")
    c = Conn(s.port)
    c.send(get("/echo.php"))
    assert c.read_response()[0] == 200
    t0 = time.time()
    assert c.closed_by_server(4)
    assert 0.8 <= time.time() - t0 < 3.0
    c.close()
    # A connection that never sends anything is closed too.
    c = Conn(s.port)
    t0 = time.time()
    assert c.closed_by_server(4)
    assert time.time() - t0 < 3.0
    c.close()
    # An active keep-alive connection is not cut while used.
    c = Conn(s.port)
    for _ in range(4):
        c.send(get("/hello.txt"))
        assert c.read_response()[0] == 200
        time.sleep(0.4)
    c.close()


@pytest.mark.parametrize("te", [b"gzip", b"gzip, chunked", b"x-custom"])
def test_unknown_transfer_encoding_is_501(server, te):
    out, took = until_closed(server.port, b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: " + te +
                             b"\r\n\r\n0\r\n\r\n")
    assert [r[0] for r in parse_responses(out)] == [501] and took < 2.5
    assert re.search(r"\b501\b", server.log())
    assert_alive(server)


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/3.0"])
def test_unsupported_http_version_is_505(server, version):
    out, took = until_closed(server.port, b"GET /echo.php " + version + b"\r\nHost: localhost\r\n\r\n")
    assert [r[0] for r in parse_responses(out)] == [505] and took < 2.5
    assert re.search(r"\b505\b", server.log())
    assert_alive(server)


@pytest.mark.parametrize("line", [b"HELLO", b"GET", b"GET /", b"GET / HTTP/1.1 extra", b"\x16\x03\x01\x02\x00\x01",
                                  b"GET / http/1.1", b"G@T / HTTP/1.1", b"GET /a b HTTP/1.1"])
def test_garbage_request_line_is_400(server, line):
    out, took = until_closed(server.port, line + b"\r\nHost: localhost\r\n\r\n")
    assert [r[0] for r in parse_responses(out)] == [400], out[:200]
    assert took < 2.5
    assert re.search(r"\b400\b", server.log())
    assert_alive(server)


def test_max_connections(start_server, php_case):
    s = start_server(php_case("http"), "--max-connections", "5")
    conns = []
    for i in range(5):
        c = Conn(s.port)
        c.send(get("/hello.txt"))
        assert c.read_response()[0] == 200
        conns.append(c)
    # The sixth is closed without an answer; so are more tries (in direct
    # mode they land on different workers, and the limit is still 5).
    for i in range(8):
        extra = Conn(s.port)
        try:
            extra.send(get("/hello.txt"))
        except OSError:
            pass
        assert extra.closed_by_server(3), "connection %d over the limit was served" % (6 + i)
        extra.close()
    # The first five still work.
    for i, c in enumerate(conns):
        c.send(get("/echo.php?c=%d" % i))
        st, _, body, _ = c.read_response()
        assert st == 200 and json.loads(body)["get"] == {"c": str(i)}
    assert "max-connections" in s.log()
    # Closing one frees its place.
    conns.pop().close()
    deadline = time.time() + 3
    while True:
        c = Conn(s.port)
        try:
            c.send(get("/hello.txt"))
            st = c.read_response()[0]
            break
        except (EOFError, OSError):
            assert time.time() < deadline, "no connection slot was freed"
            time.sleep(0.05)
        finally:
            c.close()
    assert st == 200
    for c in conns:
        c.close()


# ---- request smuggling ---------------------------------------------------------------

SMUGGLED = b"GET /echo.php?smuggled=1 HTTP/1.1\r\nHost: localhost\r\n\r\n"

SMUGGLING_CASES = {
    "two_content_lengths": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
                            b"hello!", 400),
    "two_content_lengths_in_one_field": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 6\r\n\r\n"
                                         b"hello!", 400),
    "content_length_and_transfer_encoding": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
                                             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "transfer_encoding_and_content_length": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                                             b"Content-Length: 5\r\n\r\n0\r\n\r\n", 400),
    "chunked_then_identity": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
                              b"0\r\n\r\n", (400, 501)),
    "chunked_twice": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "transfer_encoding_on_http10": (b"POST /echo.php HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "chunk_size_not_hex": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"zz\r\nhello\r\n0\r\n\r\n", 400),
    "chunk_size_negative": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"-5\r\nhello\r\n0\r\n\r\n", 400),
    "chunk_size_overflow": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"10000000000000000000005\r\nhello\r\n0\r\n\r\n", 400),
    "chunk_size_0x_prefix": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"0x5\r\nhello\r\n0\r\n\r\n", 400),
    "chunk_data_longer_than_size": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    b"3\r\nhello\r\n0\r\n\r\n", 400),
    "obs_fold": (b"GET /echo.php HTTP/1.1\r\nHost: localhost\r\nX-A: one\r\n  two\r\n\r\n", 400),
    "obs_fold_transfer_encoding": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
                                   b"0\r\n\r\n", 400),
    "nul_in_header": (b"GET /echo.php HTTP/1.1\r\nHost: localhost\r\nX-A: a\x00b\r\n\r\n", 400),
    "bare_cr_in_header": (b"GET /echo.php HTTP/1.1\r\nHost: localhost\r\nX-A: a\rb\r\n\r\n", 400),
    "bare_lf_line_endings": (b"GET /echo.php HTTP/1.1\nHost: localhost\n\n", 400),
    "bare_lf_in_one_header": (b"GET /echo.php HTTP/1.1\r\nHost: localhost\nX-A: b\r\n\r\n", 400),
    "space_before_colon": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Length : 5\r\n\r\nhello", 400),
    "tab_before_colon": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n",
                         400),
    "space_before_first_header": (b"GET /echo.php HTTP/1.1\r\n Host: localhost\r\n\r\n", 400),
    "content_length_plus_sign": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello", 400),
    "content_length_hex": (b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0x5\r\n\r\nhello", 400),
    "two_hosts": (b"GET /echo.php HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "no_host_on_http11": (b"GET /echo.php HTTP/1.1\r\n\r\n", 400),
}


@pytest.mark.parametrize("case", sorted(SMUGGLING_CASES))
def test_smuggling_defences(server, case):
    req, want = SMUGGLING_CASES[case]
    want = want if isinstance(want, tuple) else (want,)
    out, took = until_closed(server.port, req + SMUGGLED)
    rs = parse_responses(out)
    # One answer, the rejection; the request behind it never ran.
    assert len(rs) == 1, out[:500]
    assert rs[0][0] in want, out[:300]
    assert rs[0][1].get("connection", "").lower() == "close"
    assert b"smuggled" not in out
    assert took < 2.5, "connection not closed after the rejection"
    assert re.search(r"\b%d\b" % rs[0][0], server.log())
    assert_alive(server)


def test_rejection_after_a_good_request_on_the_same_connection(server):
    c = Conn(server.port)
    c.send(get("/echo.php?first=1"))
    assert c.read_response()[0] == 200
    c.send(SMUGGLING_CASES["content_length_and_transfer_encoding"][0] + SMUGGLED)
    st, h, _, _ = c.read_response()
    assert st == 400
    assert c.closed_by_server(3)
    c.close()


# ---- robustness -----------------------------------------------------------------------

SEED_REQUESTS = [
    b"GET /echo.php?a=1 HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
    b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 11\r\n\r\na=1&b=2&c=3",
    b"POST /echo.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
    b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-3\r\nIf-None-Match: \"x\"\r\n\r\n",
    b"HEAD /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET http://localhost/echo.php HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\r\n",
]

TOKENS = [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b"\x00", b"\xff", b"%", b"%00", b"%2e%2e/", b"../", b"chunked",
          b"Content-Length: 99999999999999999999\r\n", b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffff\r\n",
          b"Content-Length: -1\r\n", b"Host: \r\n", b"HTTP/1.1", b"HTTP/9.9", b"*", b";", b",", b"=", b"?" * 10,
          b"A" * 5000, b"\r\n\r\n", b"Expect: 100-continue\r\n", b"Range: bytes=-0\r\n"]


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        pos = rng.randint(0, len(data))
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice(TOKENS)
        elif op == 2 and data:
            del data[pos:pos + rng.randint(1, 20)]
        elif op == 3:
            data = data[:pos]
        elif op == 4:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        elif op == 5:
            lines = bytes(data).split(b"\r\n")
            if len(lines) > 2:
                i = rng.randrange(len(lines))
                lines.insert(rng.randrange(len(lines)), lines[i])
            data = bytearray(b"\r\n".join(lines))
        else:
            data += rng.choice(SEED_REQUESTS)
    return bytes(data)


def test_random_mutated_requests_never_crash_the_server(checked_server, php_case):
    s = checked_server(php_case("http"), "--header-timeout", "1", "--body-timeout", "1")
    rng = random.Random(20240611)
    workers_before = sorted(s.worker_pids())
    assert len(workers_before) == 2

    def one(data):
        try:
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=3)
        except OSError as e:
            return "connect: %s" % e
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass
        finally:
            sock.close()
        return None

    cases = []
    for i in range(200):
        if i % 10 == 9:
            cases.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))))
        else:
            cases.append(mutate(rng, rng.choice(SEED_REQUESTS)))
    errors = []
    lock = threading.Lock()

    def run(chunk):
        for data in chunk:
            err = one(data)
            if err:
                with lock:
                    errors.append((err, data))
    threads = [threading.Thread(target=run, args=(cases[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert_no_crash(s)
    # Also a few mutated requests on a kept-alive connection.
    for _ in range(20):
        one(SEED_REQUESTS[0] + mutate(rng, rng.choice(SEED_REQUESTS)))
    assert_alive(s)
    assert "Segmentation" not in s.log() and "core dumped" not in s.log()
    assert len(s.worker_pids()) == 2
    stop_cleanly(s)


def test_many_headers_under_a_raised_limit_reach_php(start_server, php_case):
    """--max-headers can be raised; every header must then still reach PHP.
    (The workers once had a fixed array of variables: 400 headers gave a 502
    and a worker restart in pooled mode and a hung client in direct mode.)"""
    s = start_server(php_case("http"), "--max-headers", "1000")
    names = ["X-H%d" % i for i in range(400)]
    head = "".join("%s: v%d\r\n" % (n, i) for i, n in enumerate(names))
    raw = ("GET /headers.php HTTP/1.1\r\nHost: x\r\n" + head + "Connection: close\r\n\r\n").encode()
    (status, _, body), = parse_responses(raw_request(s.port, raw))
    assert (status, body) == (200, b"400 400 v399")
    assert "malformed" not in s.log() and "exited" not in s.log()


def test_max_headers_has_an_upper_bound():
    import subprocess
    from conftest import TUSK_BIN
    r = subprocess.run([TUSK_BIN, "serve", "--max-headers", "1000000"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--max-headers" in r.stderr


def tree_rss_kib(pid):
    """Resident memory of a process and its children, in KiB."""
    total = 0
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def test_output_held_for_a_slow_reader_is_bounded(start_server, php_case):
    # 64 MiB of PHP output to a client that reads nothing for a while: the
    # server holds about --output-buffer-size of it (PHP waits for the
    # client), not the whole response; then every byte arrives, in order.
    s = start_server(php_case("http"), "--output-buffer-size", "256k")
    before = tree_rss_kib(s.proc.pid)
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.settimeout(10)
    c.connect(("127.0.0.1", s.port))
    try:
        c.sendall(b"GET /huge.php?mb=64 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        time.sleep(2.0)
        grown = tree_rss_kib(s.proc.pid) - before
        assert grown < 24 * 1024, "server grew by %d KiB while the client read nothing" % grown
        # Another client is served meanwhile (by the other worker; in direct
        # mode a connection the waiting worker accepted waits with it).
        if TEST_MODE != "direct":
            st, _, body = raw_get(s.port, "/echo.php")
            assert st == 200
        data = bytearray()
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            data += b
        at = data.index(b"\r\n\r\n")
        head, body = bytes(data[:at]), data[at + 4:]
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
        if b"chunked" in head.lower():
            body = dechunk(body)
        assert len(body) == 64 << 20 and body == b"0123456789abcdef" * (4 << 20)
    finally:
        c.close()
    assert s.proc.poll() is None


def raw_get(port, path):
    out = raw_request(port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    rs = parse_responses(out)
    return rs[0][0], rs[0][1], rs[0][2]


def dechunk(b):
    out, at = bytearray(), 0
    while True:
        eol = b.index(b"\r\n", at)
        n = int(bytes(b[at:eol]).split(b";")[0], 16)
        if n == 0:
            return bytes(out)
        out += b[eol + 2:eol + 2 + n]
        at = eol + 2 + n + 2


def test_server_sent_events_stream_keepalive_and_disconnect(start_server, php_case, tmp_path):
    s = start_server(php_case("http"), "--sse-keepalive", "0.3")
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    # Events arrive as produced; while the script is quiet (1 s between
    # events here) keep-alive comments are sent, and only between events.
    c.sendall(b"GET /sse.php?n=2&gap=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    t0 = time.time()
    data = b""
    first_at = None
    while b"tick 2" not in data:
        b = c.recv(4096)
        assert b, data
        data += b
        if first_at is None and b"tick 1" in data:
            first_at = time.time() - t0
    assert first_at is not None and first_at < 0.8, first_at
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: text/event-stream" in head.lower()
    text = dechunk(body + b"0\r\n\r\n") if b"chunked" in head.lower() else body
    if TEST_MODE != "direct":
        # The master keeps the connection; in direct mode the loop is the
        # script's, so the script itself must send comments while it sleeps.
        assert text.count(b": keep-alive\n\n") >= 2, text
    assert b"data: tick 1\n\n" in text and b"data: tick 2\n\n" in text
    assert b"tick 1\n: keep-alive" not in text  # never inside an event
    c.close()
    # A client that leaves is seen by PHP at its next flush.
    mark = tmp_path / "sse.mark"
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.sendall(b"GET /sse.php?n=50&gap=0.1&mark=" + str(mark).encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while b"tick 2" not in data:
        data += c.recv(4096)
    c.close()
    deadline = time.time() + 10
    while not mark.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert mark.exists() and mark.read_text().startswith("aborted after "), "PHP never saw the client leave"
    assert int(mark.read_text().split()[-1]) < 50
