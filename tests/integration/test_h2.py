"""Cleartext HTTP/2 (h2c) through real sockets: prior knowledge and the
HTTP/1.1 Upgrade, PHP and static responses, streaming, 103, one
connection's streams running in parallel, limits, drain with GOAWAY, and
the abuse defences (rapid reset, CONTINUATION flood, garbage).

Clients: python h2 (frames we control), curl --http2/--http2-prior-knowledge,
nghttp, and hand-packed frames where h2 would refuse to misbehave."""
import json
import os
import signal
import socket
import struct
import subprocess
import time

import pytest
import h2.config
import h2.connection
import h2.events
import h2.settings

from conftest import PHP_DIR, TEST_MODE

DOCROOT = os.path.join(PHP_DIR, "h2")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DIRECT = TEST_MODE == "direct"

# Frame types and error codes (RFC 9113).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
NO_ERROR, PROTOCOL_ERROR, ENHANCE_YOUR_CALM = 0x0, 0x1, 0xB


def serve(start_server, *args, workers=2):
    return start_server(DOCROOT, "--h2c", *args, workers=workers)


class H2:
    """A python-h2 client on one socket; collects responses per stream."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                             validate_outbound_headers=False,
                                             normalize_outbound_headers=False))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.streams = {}  # id -> {"headers": [...], "info": [[...]], "data": b"", "ended", "reset", "chunks"}
        self.goaway = None
        self.remote_settings = {}
        self.closed = False
        self.order = []  # stream ids in the order they ended

    def _st(self, sid):
        return self.streams.setdefault(sid, {"headers": None, "info": [], "data": b"", "ended": None,
                                             "reset": None, "chunks": []})

    def request(self, path, method="GET", headers=(), body=None, end=True, authority="localhost"):
        sid = self.conn.get_next_available_stream_id()
        hs = [(":method", method), (":path", path), (":scheme", "http"), (":authority", authority)]
        hs += list(headers)
        self.conn.send_headers(sid, hs, end_stream=end and body is None)
        if body is not None:
            self._send_body(sid, body, end)
        self.sock.sendall(self.conn.data_to_send())
        self._st(sid)
        return sid

    def _send_body(self, sid, body, end):
        off = 0
        while off < len(body):
            n = min(len(body) - off, self.conn.local_settings.max_frame_size, 16384,
                    self.conn.local_flow_control_window(sid))
            if n <= 0:
                self.sock.sendall(self.conn.data_to_send())
                self.pump(0.5)
                continue
            self.conn.send_data(sid, body[off:off + n])
            off += n
        if end:
            self.conn.end_stream(sid)

    def pump(self, timeout=None):
        """Reads once and handles the events; returns False on EOF."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        now = time.time()
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.InformationalResponseReceived):
                self._st(ev.stream_id)["info"].append(ev.headers)
                self._st(ev.stream_id)["chunks"].append((now, "info"))
            elif isinstance(ev, h2.events.ResponseReceived):
                self._st(ev.stream_id)["headers"] = ev.headers
            elif isinstance(ev, h2.events.DataReceived):
                st = self._st(ev.stream_id)
                st["data"] += ev.data
                st["chunks"].append((now, ev.data))
                if ev.flow_controlled_length:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self._st(ev.stream_id)["ended"] = now
                self.order.append(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self._st(ev.stream_id)["reset"] = ev.error_code
                self.order.append(ev.stream_id)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = (ev.error_code, ev.last_stream_id)
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                for k, v in ev.changed_settings.items():
                    self.remote_settings[int(k)] = v.new_value
        out = self.conn.data_to_send()
        if out:
            try:
                self.sock.sendall(out)
            except OSError:
                pass
        return True

    def wait(self, cond, timeout=10.0):
        deadline = time.time() + timeout
        while not cond():
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("timed out; streams=%r goaway=%r" % (
                    {k: (v["headers"], v["data"][:100], v["ended"], v["reset"]) for k, v in self.streams.items()},
                    self.goaway))
            if not self.pump(min(left, 1.0)):
                if not cond():
                    raise AssertionError("connection closed; streams=%r goaway=%r" % (
                        {k: (v["headers"], v["data"][:100], v["ended"], v["reset"]) for k, v in self.streams.items()},
                        self.goaway))
                return

    def done(self, sid):
        st = self.streams[sid]
        return st["ended"] is not None or st["reset"] is not None

    def response(self, sid, timeout=10.0):
        self.wait(lambda: self.done(sid), timeout)
        st = self.streams[sid]
        # A complete response may be followed by RST_STREAM(NO_ERROR) (the
        # server does not want the rest of the request body).
        assert st["ended"] is not None, "stream %d reset with %r" % (sid, st["reset"])
        assert st["reset"] in (None, NO_ERROR), st["reset"]
        hdrs = st["headers"]
        return int(dict(hdrs)[":status"]), hdrs, st["data"]

    def get(self, path, **kw):
        return self.response(self.request(path, **kw))

    def close(self):
        self.sock.close()


def hmap(headers):
    """Header list -> dict of name -> list of values."""
    out = {}
    for k, v in headers:
        out.setdefault(k, []).append(v)
    return out


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, sid & 0x7FFFFFFF) + payload


def read_frames(sock, timeout=5.0, until=None):
    """Reads frames until the peer closes or until(frames) is true; returns
    (frames, closed)."""
    buf = b""
    frames = []
    deadline = time.time() + timeout
    closed = False
    while time.time() < deadline:
        sock.settimeout(max(0.05, deadline - time.time()))
        try:
            b = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not b:
            closed = True
            break
        buf += b
        while len(buf) >= 9:
            ln = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + ln:
                break
            ftype, flags, sid = struct.unpack(">BBI", buf[3:9])
            frames.append((ftype, flags, sid & 0x7FFFFFFF, buf[9:9 + ln]))
            buf = buf[9 + ln:]
        if until and until(frames):
            break
    return frames, closed


def goaways(frames):
    return [struct.unpack(">II", f[3][:8]) for f in frames if f[0] == GOAWAY]


def assert_healthy(s):
    """The server still answers HTTP/2 and HTTP/1.1."""
    c = H2(s.port)
    try:
        st, hs, body = c.get("/fast.php")
        assert st == 200 and body == b"fast done"
    finally:
        c.close()
    out = subprocess.run(["curl", "-s", "--max-time", "10", s.url("/fast.php")], capture_output=True)
    assert out.stdout == b"fast done"
    assert s.proc.poll() is None


def curl(*args):
    out = subprocess.run(["curl", "-s", "-S", "--max-time", "20"] + list(args), capture_output=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode("utf-8", "replace")


# ---- requests --------------------------------------------------------------------------------------


def test_get_head_protocol_and_host_from_authority(start_server):
    s = serve(start_server)
    c = H2(s.port)
    st, hs, body = c.get("/echo.php?a=1&b=two", authority="example.test:8443", headers=[("x-test", "hello")])
    assert st == 200
    v = json.loads(body)
    assert v["protocol"] == "HTTP/2.0"
    assert v["method"] == "GET"
    assert v["host"] == "example.test:8443"
    assert v["get"] == {"a": "1", "b": "two"}
    assert v["uri"] == "/echo.php?a=1&b=two"
    assert v["x_test"] == "hello"
    h = hmap(hs)
    assert h["content-type"] == ["application/json"]
    assert h["content-length"] == [str(len(body))]
    assert h["server"] == ["tusk"]
    # HEAD: same headers, no body, and no Content-Length that differs from
    # the GET's (RFC 9110 8.6): the script's output is not counted, so none.
    st, hs, body = c.get("/echo.php", method="HEAD")
    assert st == 200 and body == b""
    assert hmap(hs)["content-type"] == ["application/json"]
    assert "content-length" not in hmap(hs), hs
    # A Content-Length the script sets itself is kept.
    st, hs, body = c.get("/fixed.php", method="HEAD")
    assert st == 200 and body == b"" and hmap(hs)["content-length"] == ["11"], hs
    st, hs, body = c.get("/fixed.php")
    assert st == 200 and body == b"fixed body\n" and hmap(hs)["content-length"] == ["11"], hs
    c.close()


def test_host_must_match_authority(start_server):
    # RFC 9113 8.3.1: a Host naming another entity than :authority is a
    # malformed request (PHP would see one, the router the other). The same
    # name in another case is the same entity; the connection stays usable.
    s = serve(start_server)
    c = H2(s.port)
    st, _, _ = c.get("/echo.php", authority="a.example", headers=[("host", "b.example")])
    assert st == 400
    st, _, body = c.get("/echo.php", authority="a.example", headers=[("host", "A.Example")])
    assert st == 200 and json.loads(body)["host"] == "A.Example"
    st, _, body = c.get("/echo.php", authority="a.example")
    assert st == 200 and json.loads(body)["host"] == "a.example"
    c.close()
    assert_healthy(s)


def test_output_held_for_a_stalled_stream_is_bounded(start_server):
    # A client that grants no flow-control window while PHP writes 64 MiB:
    # the server holds about --output-buffer-size of it (PHP waits), not
    # all of it; then, with windows granted, every byte arrives in order.
    from test_http import tree_rss_kib
    s = serve(start_server, "--output-buffer-size", "256k")
    before = tree_rss_kib(s.proc.pid)
    c = H2(s.port)
    sid = c.request("/huge.php?mb=64")
    time.sleep(2.0)
    grown = tree_rss_kib(s.proc.pid) - before
    assert grown < 24 * 1024, "server grew by %d KiB while the stream was stalled" % grown
    piece = b"0123456789abcdef" * 4096
    got, pos, ended = 0, 0, False
    c.sock.settimeout(10)
    while not ended:
        data = c.sock.recv(1 << 20)
        assert data, "connection closed after %d bytes" % got
        for ev in c.conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                d = ev.data
                want = (piece * 2)[pos:pos + len(d)] if len(d) <= len(piece) else None
                assert want is None or d == want, "bytes out of order at %d" % got
                got += len(d)
                pos = (pos + len(d)) % len(piece)
                c.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                ended = True
            elif isinstance(ev, h2.events.StreamReset):
                raise AssertionError("stream reset %r" % ev.error_code)
        c.sock.sendall(c.conn.data_to_send())
    assert got == 64 << 20
    c.close()
    assert_healthy(s)


def test_curl_prior_knowledge_and_nghttp(start_server):
    s = serve(start_server)
    out = subprocess.run(["curl", "-s", "-i", "--http2-prior-knowledge", s.url("/echo.php")], capture_output=True)
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 200"), head
    assert json.loads(body)["protocol"] == "HTTP/2.0"
    out = subprocess.run(["nghttp", "-n", "-s", "--timeout=10", s.url("/style.css")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # nghttp's summary: one response, status 200.
    assert "200" in out.stdout and "/style.css" in out.stdout, out.stdout


def test_post_urlencoded_and_multipart(start_server):
    s = serve(start_server)
    c = H2(s.port)
    st, hs, body = c.get("/echo.php", method="POST", body=b"name=tusk&list%5B%5D=1&list%5B%5D=2",
                         headers=[("content-type", "application/x-www-form-urlencoded")])
    assert st == 200
    v = json.loads(body)
    assert v["method"] == "POST"
    assert v["post"] == {"name": "tusk", "list": ["1", "2"]}
    assert v["content_type"] == "application/x-www-form-urlencoded"
    # Without a content-length header the body length still reaches PHP.
    assert v["content_length"] == "35"
    # Multipart with a binary file bigger than one DATA frame.
    import hashlib
    blob = bytes(range(256)) * 300
    bnd = "----tuskh2boundary"
    mp = ("--%s\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi there\r\n"
          "--%s\r\nContent-Disposition: form-data; name=\"up\"; filename=\"b.bin\"\r\n"
          "Content-Type: application/octet-stream\r\n\r\n" % (bnd, bnd)).encode() + blob + \
         ("\r\n--%s--\r\n" % bnd).encode()
    st, hs, body = c.get("/echo.php", method="POST", body=mp,
                         headers=[("content-type", "multipart/form-data; boundary=" + bnd),
                                  ("content-length", str(len(mp)))])
    assert st == 200
    v = json.loads(body)
    assert v["post"] == {"note": "hi there"}
    f = v["files"]["up"]
    assert f["name"] == "b.bin" and f["size"] == len(blob) and f["error"] == 0
    assert f["sha1"] == hashlib.sha1(blob).hexdigest()
    c.close()


def test_cookie_headers_are_joined(start_server):
    s = serve(start_server)
    c = H2(s.port)
    # RFC 9113 8.2.3: the cookie header may be split; the server joins with "; ".
    st, hs, body = c.get("/echo.php", headers=[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=three")])
    assert st == 200
    v = json.loads(body)
    assert v["cookie"] == {"a": "1", "b": "2", "c": "three"}
    assert v["http_cookie"] == "a=1; b=2; c=three"
    c.close()


def test_php_headers_lowercase_setcookie_and_no_connection_headers(start_server):
    s = serve(start_server)
    c = H2(s.port)
    st, hs, body = c.get("/headers.php")
    assert st == 201 and body == b"headers body"
    names = [k for k, _ in hs]
    assert all(k == k.lower() for k in names), names
    h = hmap(hs)
    assert h["x-mixed-case"] == ["Value1"]
    assert h["x-multi"] == ["one", "two"]
    cookies = h["set-cookie"]
    assert len(cookies) == 2
    assert cookies[0].startswith("sess=abc123") and "HttpOnly" in cookies[0]
    assert cookies[1].startswith("theme=dark")
    for bad in ("connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"):
        assert bad not in h, (bad, hs)
    c.close()
    # curl agrees (it fails a response with connection-specific headers).
    out = curl("-i", "--http2-prior-knowledge", s.url("/headers.php"))
    assert out.startswith("HTTP/2 201")


# ---- static files ---------------------------------------------------------------------------------


def test_static_etag_304_and_range(start_server):
    s = serve(start_server)
    want = open(os.path.join(DOCROOT, "style.css"), "rb").read()
    c = H2(s.port)
    st, hs, body = c.get("/style.css")
    assert st == 200 and body == want
    h = hmap(hs)
    assert h["content-length"] == [str(len(want))]
    assert h["content-type"][0].startswith("text/css")
    etag = h["etag"][0]
    assert "last-modified" in h
    st, hs, body = c.get("/style.css", headers=[("if-none-match", etag)])
    assert st == 304 and body == b""
    assert hmap(hs)["etag"] == [etag]
    st, hs, body = c.get("/style.css", headers=[("range", "bytes=5-9")])
    assert st == 206 and body == want[5:10]
    h = hmap(hs)
    assert h["content-range"] == ["bytes 5-9/%d" % len(want)]
    assert h["content-length"] == ["5"]
    st, hs, body = c.get("/style.css", headers=[("range", "bytes=9999-")])
    assert st == 416
    st, hs, body = c.get("/style.css", method="HEAD")
    assert st == 200 and body == b"" and hmap(hs)["content-length"] == [str(len(want))]
    st, hs, body = c.get("/nope.css")
    assert st == 404
    c.close()


def test_large_php_response_respects_flow_control(start_server):
    s = serve(start_server)
    c = H2(s.port)
    st, hs, body = c.get("/big.php")
    assert st == 200
    assert len(body) == 48 * 65536
    assert body[:32] == b"0123456789abcdef0123456789abcdef"
    c.close()


# ---- streaming and 103 ------------------------------------------------------------------------------


def test_flush_streams_pieces_before_the_end(start_server):
    s = serve(start_server)
    c = H2(s.port)
    sid = c.request("/flush.php")
    st, hs, body = c.response(sid)
    assert st == 200 and body == b"first\nsecond\n"
    chunks = c.streams[sid]["chunks"]
    first_at = next(t for t, d in chunks if b"first" in d)
    end_at = c.streams[sid]["ended"]
    assert end_at - first_at > 0.4, chunks
    assert b"second" not in b"".join(d for t, d in chunks if t == first_at)
    c.close()


def test_server_sent_events_keepalive_over_h2(start_server):
    # An event stream over HTTP/2: events as produced, and while the script
    # is quiet (1 s here) keep-alive comments on its stream, only between
    # events; another stream of the connection is served meanwhile.
    s = serve(start_server, "--sse-keepalive", "0.3")
    c = H2(s.port)
    sid = c.request("/sse.php?n=2&gap=1")
    deadline = time.time() + 10
    other = None
    while c.streams[sid]["ended"] is None and time.time() < deadline:
        c.pump(0.2)
        if other is None and b"tick 1" in c.streams[sid]["data"]:
            other = c.request("/fast.php")
    st, hs, body = c.response(sid)
    assert st == 200 and dict(hs)["content-type"].startswith("text/event-stream")
    assert b"data: tick 1\n\n" in body and b"data: tick 2\n\n" in body
    if not DIRECT:
        # In direct mode the loop is the script's while it runs.
        assert body.count(b": keep-alive\n\n") >= 2, body
    assert b"tick 1\n: keep-alive" not in body
    assert c.response(other)[0] == 200
    c.close()


def test_early_hints_103(start_server):
    s = serve(start_server)
    c = H2(s.port)
    sid = c.request("/hints.php")
    st, hs, body = c.response(sid)
    info = c.streams[sid]["info"]
    assert len(info) == 1, info
    ih = hmap(info[0])
    assert ih[":status"] == ["103"]
    assert ih["link"] == ["</style.css>; rel=preload; as=style"]
    assert "content-length" not in ih and "content-type" not in ih
    assert st == 200
    assert body.startswith(b"final after hints")
    assert "</app.js>; rel=preload; as=script" in hmap(hs)["link"]
    # The hints came before the final response existed (300 ms later).
    info_at = next(t for t, d in c.streams[sid]["chunks"] if d == "info")
    assert c.streams[sid]["ended"] - info_at > 0.2
    c.close()


# ---- parallel streams ---------------------------------------------------------------------------------


@pytest.mark.skipif(DIRECT, reason="direct mode: PHP runs inline in the worker that owns the connection")
def test_streams_of_one_connection_run_in_parallel(start_server):
    s = serve(start_server, workers=2)
    c = H2(s.port)
    t0 = time.time()
    slow = c.request("/slow.php")
    fast = c.request("/fast.php")
    c.wait(lambda: c.done(slow) and c.done(fast), timeout=10)
    assert c.order == [fast, slow], c.order
    assert c.streams[fast]["data"] == b"fast done"
    assert c.streams[slow]["data"] == b"slow done"
    assert c.streams[fast]["ended"] - t0 < 0.8
    c.close()


@pytest.mark.skipif(DIRECT, reason="direct mode: PHP runs inline in the worker that owns the connection")
def test_nghttp_multiplexes_slow_and_fast(start_server):
    s = serve(start_server, workers=2)
    t0 = time.time()
    out = subprocess.run(["nghttp", "-n", "-s", "--timeout=10", s.url("/slow.php"), s.url("/slow.php?2"),
                          s.url("/fast.php")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # Two one-second requests on two workers, one connection: about 1 s, not 2.
    assert time.time() - t0 < 1.9
    assert out.stdout.count(" 200 ") == 3, out.stdout


# ---- h2c upgrade ---------------------------------------------------------------------------------------


def test_upgrade_h2c_with_curl_get_and_post(start_server):
    s = serve(start_server)
    out = subprocess.run(["curl", "-s", "-v", "--http2", s.url("/echo.php?u=1")], capture_output=True)
    assert b"HTTP/1.1 101" in out.stderr, out.stderr
    assert b"< HTTP/2 200" in out.stderr
    v = json.loads(out.stdout)
    assert v["protocol"] == "HTTP/2.0" and v["get"] == {"u": "1"}
    assert v["host"] == "127.0.0.1:%d" % s.port
    out = subprocess.run(["curl", "-s", "-v", "--http2", "-d", "x=1&y=zz", s.url("/echo.php")], capture_output=True)
    assert b"HTTP/1.1 101" in out.stderr, out.stderr
    v = json.loads(out.stdout)
    assert v["method"] == "POST" and v["post"] == {"x": "1", "y": "zz"}
    assert v["protocol"] == "HTTP/2.0"


def test_upgrade_then_more_streams_on_the_connection(start_server):
    s = serve(start_server)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    sock.sendall(b"GET /fast.php HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                 b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_upgrade_connection()
    sock.sendall(conn.data_to_send())
    got = {}
    events = conn.receive_data(rest) if rest else []
    sid3 = conn.get_next_available_stream_id()
    assert sid3 == 3
    conn.send_headers(3, [(":method", "GET"), (":path", "/echo.php"), (":scheme", "http"),
                          (":authority", "x")], end_stream=True)
    sock.sendall(conn.data_to_send())
    deadline = time.time() + 10
    ended = set()
    while len(ended) < 2 and time.time() < deadline:
        for ev in events:
            if isinstance(ev, h2.events.DataReceived):
                got[ev.stream_id] = got.get(ev.stream_id, b"") + ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                ended.add(ev.stream_id)
        sock.sendall(conn.data_to_send())
        if len(ended) == 2:
            break
        events = conn.receive_data(sock.recv(65536))
    assert ended == {1, 3}
    assert got[1] == b"fast done"
    assert json.loads(got[3])["protocol"] == "HTTP/2.0"
    sock.close()


# ---- limits --------------------------------------------------------------------------------------------


def test_limits_431_414_413_and_too_many_headers(start_server):
    s = serve(start_server, "--max-header-size", "4k", "--max-uri", "1k", "--max-body-size", "2k",
              "--max-headers", "20")
    c = H2(s.port)
    st, _, body = c.get("/echo.php", headers=[("x-big", "a" * 6000)])
    assert st == 431 and b"431" in body
    assert s.wait_log(r"431 header list of stream \d+ over --max-header-size")
    st, _, _ = c.get("/echo.php?" + "q" * 2000)
    assert st == 414
    st, _, _ = c.get("/echo.php", headers=[("x-h%d" % i, "v") for i in range(40)])
    assert st == 431
    assert s.wait_log(r"431 stream \d+ has more than --max-headers 20")
    # Declared too big: answered at once, the body is not awaited.
    sid = c.request("/echo.php", method="POST", headers=[("content-length", "5000")], end=False)
    st, _, _ = c.response(sid, timeout=5)
    assert st == 413
    c.wait(lambda: c.streams[sid]["reset"] is not None, timeout=5)
    assert c.streams[sid]["reset"] == NO_ERROR
    # Undeclared and too big: 413 once the limit is passed.
    sid = c.request("/echo.php", method="POST", body=b"x" * 5000)
    st, _, _ = c.response(sid, timeout=5)
    assert st == 413
    assert s.wait_log(r"413 body of stream \d+ is over --max-body-size")
    # The connection still works, and a body under the limit goes through.
    st, _, body = c.get("/echo.php", method="POST", body=b"y" * 1500)
    assert st == 200 and json.loads(body)["input"] == "y" * 1500
    c.close()
    assert_healthy(s)


def test_max_concurrent_streams_is_advertised(start_server):
    s = serve(start_server, "--h2-max-streams", "5")
    c = H2(s.port)
    c.wait(lambda: h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS in c.remote_settings)
    assert c.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 5
    assert c.remote_settings[h2.settings.SettingCodes.ENABLE_PUSH] == 0
    c.close()
    # The same, read from nghttp's frame dump.
    out = subprocess.run(["nghttp", "-nv", "--timeout=10", s.url("/fast.php")], capture_output=True, text=True)
    assert "[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):5]" in out.stdout, out.stdout


def test_streams_over_the_limit_are_refused(start_server):
    s = serve(start_server, "--h2-max-streams", "2", workers=2)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    # Before the client ACKs the server's SETTINGS, streams over the limit
    # are refused one by one (after the ACK nghttp2 makes it a connection
    # error, which RFC 9113 5.1.2 also allows).
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
    hb = _hpack([(":method", "GET"), (":path", "/slow.php"), (":scheme", "http"), (":authority", "x")])
    sock.sendall(b"".join(frame(HEADERS, 0x5, sid, hb) for sid in (1, 3, 5)))
    frames, _ = read_frames(sock, 8, until=lambda fs: sum(1 for f in fs if f[0] == DATA and f[1] & 1) == 2)
    rst = [(f[2], struct.unpack(">I", f[3])[0]) for f in frames if f[0] == RST_STREAM]
    assert (5, 0x7) in rst, frames  # REFUSED_STREAM
    # The two admitted streams complete.
    ends = sorted(f[2] for f in frames if f[0] == DATA and f[1] & 1)
    assert ends == [1, 3], frames
    sock.close()


def _hpack(headers):
    import hpack
    return hpack.Encoder().encode(headers)


# ---- drain ---------------------------------------------------------------------------------------------


def test_goaway_on_sigterm_while_a_slow_stream_finishes(start_server):
    # Raw frames: python h2 refuses frames that follow a GOAWAY.
    import hpack
    s = serve(start_server)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    hb = _hpack([(":method", "GET"), (":path", "/slow.php"), (":scheme", "http"), (":authority", "x")])
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, 0x5, 1, hb))
    time.sleep(0.3)
    t0 = time.time()
    s.send_signal(signal.SIGTERM)
    got = {}

    def note(fs):
        for f in fs:
            if f[0] == GOAWAY and "goaway" not in got:
                got["goaway"] = time.time()
        return False

    frames, closed = read_frames(sock, 10, until=note)
    assert closed, frames
    types = [f[0] for f in frames if f[0] in (GOAWAY, HEADERS, DATA)]
    if not DIRECT:  # (direct mode: the worker is busy running the script)
        assert types[0] == GOAWAY, frames
        assert got["goaway"] - t0 < 0.9  # announced at once, before the slow stream ends
    last, code = goaways(frames)[0]
    assert code == NO_ERROR and last >= 1
    (head,) = [f for f in frames if f[0] == HEADERS and f[2] == 1]
    assert dict(hpack.Decoder().decode(head[3]))[":status"] == "200"
    body = b"".join(f[3] for f in frames if f[0] == DATA and f[2] == 1)
    assert body == b"slow done"
    assert any(f[0] in (DATA, HEADERS) and f[2] == 1 and f[1] & 0x1 for f in frames)  # END_STREAM
    sock.close()
    assert s.proc.wait(timeout=10) == 0


def test_idle_connection_gets_goaway_before_close(start_server):
    s = serve(start_server, "--idle-timeout", "1")
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    req = _hpack([(":method", "GET"), (":path", "/fast.php"), (":scheme", "http"), (":authority", "x")])
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, 0x5, 1, req))
    t0 = time.time()
    frames, closed = read_frames(sock, 5)
    assert closed, frames
    assert 0.8 < time.time() - t0 < 4
    assert b"".join(f[3] for f in frames if f[0] == DATA) == b"fast done"
    # RFC 9113 9.1: GOAWAY first, naming the last stream that was processed.
    assert goaways(frames) == [(1, NO_ERROR)], frames
    sock.close()


def test_new_connections_during_drain_are_not_served(start_server):
    s = serve(start_server)
    c = H2(s.port)
    c.request("/slow.php")
    time.sleep(0.3)
    s.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    # The listener is closed: a new connection is refused or gets nothing.
    try:
        d = socket.create_connection(("127.0.0.1", s.port), timeout=2)
        d.sendall(PREFACE + frame(SETTINGS, 0, 0))
        frames, closed = read_frames(d, 2)
        assert not any(f[0] == HEADERS for f in frames)
        d.close()
    except OSError:
        pass
    assert s.proc.wait(timeout=10) == 0
    c.close()


# ---- abuse ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(DIRECT, reason="direct mode: a request runs to its end before the next frame is read, "
                                   "so a reset never finds it running")
def test_rapid_reset_ends_the_connection(start_server, tmp_path):
    s = serve(start_server, "--h2-max-streams", "5")
    marks = tmp_path / "marks"
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
    path = "/mark.php?ms=2000&f=" + str(marks)
    hb = _hpack([(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "x")])
    frames = []
    for i in range(60):
        sid = 1 + 2 * i
        try:
            sock.sendall(frame(HEADERS, 0x5, sid, hb))
            time.sleep(0.02)  # the request reaches PHP ...
            sock.sendall(frame(RST_STREAM, 0, sid, struct.pack(">I", 0x8)))  # ... and is cancelled
        except OSError:
            break
        fs, closed = read_frames(sock, 0.01)
        frames += fs
        if goaways(frames) or closed:
            break
    fs, closed = read_frames(sock, 5, until=lambda fs: bool(goaways(frames + fs)))
    frames += fs
    ga = goaways(frames)
    assert ga, frames
    assert ga[0][1] == ENHANCE_YOUR_CALM, ga
    # More than twice --h2-max-streams cancels (11 here), and soon after.
    assert 11 <= sid <= 2 * 20, sid
    assert s.wait_log(r"HTTP/2 client cancelled 11 requests within 10s \(rapid reset\)"), s.log()
    assert not any(f[0] == DATA for f in frames)
    sock.close()
    assert_healthy(s)


def test_reset_in_the_same_read_never_starts_php(start_server, tmp_path):
    s = serve(start_server, "--h2-max-streams", "5")
    marks = tmp_path / "marks"
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    path = "/mark.php?f=" + str(marks)
    hb = _hpack([(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "x")])
    out = PREFACE + frame(SETTINGS, 0, 0)
    for i in range(50):
        sid = 1 + 2 * i
        out += frame(HEADERS, 0x5, sid, hb) + frame(RST_STREAM, 0, sid, struct.pack(">I", 0x8))
    # A last request that is not cancelled shows the connection goes on.
    out += frame(HEADERS, 0x5, 101, _hpack([(":method", "GET"), (":path", "/fast.php"), (":scheme", "http"),
                                             (":authority", "x")]))
    sock.sendall(out)
    frames, closed = read_frames(sock, 5, until=lambda fs: any(f[0] == DATA and f[2] == 101 for f in fs))
    assert b"".join(f[3] for f in frames if f[0] == DATA and f[2] == 101) == b"fast done"
    assert not goaways(frames)
    time.sleep(0.3)
    assert not marks.exists(), marks.read_text()
    sock.close()


def test_continuation_flood_is_cut(start_server):
    s = serve(start_server)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
    hb = _hpack([(":method", "GET"), (":path", "/fast.php"), (":scheme", "http"), (":authority", "x")])
    out = frame(HEADERS, 0x1, 1, hb)  # END_STREAM, no END_HEADERS
    import hpack
    enc = hpack.Encoder()
    for i in range(1000):
        out += frame(CONTINUATION, 0, 1, enc.encode([("x-flood-%d" % i, "v" * 20)]))
    try:
        sock.sendall(out)
    except OSError:
        pass
    frames, closed = read_frames(sock, 10)
    assert closed, frames
    ga = goaways(frames)
    assert ga and ga[-1][1] != NO_ERROR, frames
    assert not any(f[0] == HEADERS for f in frames)
    sock.close()
    assert_healthy(s)


def test_headers_on_a_skipped_stream_id_is_a_connection_error(start_server):
    s = serve(start_server)
    req = _hpack([(":method", "GET"), (":path", "/fast.php"), (":scheme", "http"), (":authority", "x")])
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    # Gaps in stream ids are fine (1, then 7, then 9) ...
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, 0x5, 1, req) + frame(HEADERS, 0x5, 7, req))
    frames, _ = read_frames(sock, 5, until=lambda fs: sum(1 for f in fs if f[0] == DATA and f[1] & 1) == 2)
    assert sorted(f[2] for f in frames if f[0] == DATA and f[1] & 1) == [1, 7], frames
    sock.sendall(frame(HEADERS, 0x5, 9, req))
    frames, _ = read_frames(sock, 5, until=lambda fs: any(f[0] == DATA and f[1] & 1 for f in fs))
    assert [f[2] for f in frames if f[0] == DATA] == [9], frames
    # ... but stream 5 was skipped (implicitly closed): HEADERS on it is a
    # connection error of type PROTOCOL_ERROR (RFC 9113 5.1.1; h2spec 5.1.1/2).
    sock.sendall(frame(HEADERS, 0x5, 5, req))
    frames, closed = read_frames(sock, 5)
    assert closed and goaways(frames) == [(9, PROTOCOL_ERROR)], frames
    assert not any(f[0] == HEADERS for f in frames)
    sock.close()
    assert_healthy(s)


@pytest.mark.parametrize("garbage", [b"\x00\x00\x04\x99\x00\x00\x00\x00\x00abcd" * 3,
                                     b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                     b"\xff" * 64],
                         ids=["unknown-frames-then", "http1", "ones"])
def test_garbage_after_preface(start_server, garbage):
    s = serve(start_server)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    # Unknown frame types are ignored (RFC 9113 4.1), so the first case adds
    # a DATA frame on stream 0, which is a connection error.
    if garbage.startswith(b"\x00\x00\x04\x99"):
        garbage += frame(DATA, 0, 0, b"zz")
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0) + garbage)
    frames, closed = read_frames(sock, 5)
    assert closed, frames
    ga = goaways(frames)
    assert ga and ga[-1][1] in (PROTOCOL_ERROR, 0x6), (ga, frames)  # or FRAME_SIZE_ERROR
    sock.close()
    assert_healthy(s)


def test_bad_preface_is_not_http2(start_server):
    s = serve(start_server)
    data = b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    sock.sendall(data)
    sock.settimeout(5)
    got = b""
    try:
        while True:
            b = sock.recv(4096)
            if not b:
                break
            got += b
    except (socket.timeout, ConnectionResetError):
        pass
    # Not the HTTP/2 preface: treated as HTTP/1.1 with version 2.0.
    assert got.startswith(b"HTTP/1.1 505 "), got[:200]
    sock.close()
    assert_healthy(s)


# ---- PHP failures -----------------------------------------------------------------------------------------


def test_fatal_error_on_one_stream_others_fine(start_server):
    s = serve(start_server)
    c = H2(s.port)
    bad = c.request("/fatal.php")
    good = c.request("/fast.php")
    st, _, body = c.response(bad)
    assert st == 500
    assert b"this_function_does_not_exist_h2" not in body
    st, _, body = c.response(good)
    assert st == 200 and body == b"fast done"
    assert s.wait_log(r"Call to undefined function this_function_does_not_exist_h2\(\)")
    st, _, body = c.get("/fast.php")
    assert st == 200
    c.close()


@pytest.mark.skipif(DIRECT, reason="direct mode: the crashing worker owns the connection itself")
def test_worker_crash_on_one_stream_others_fine(start_server):
    s = serve(start_server, workers=2)
    c = H2(s.port)
    slow = c.request("/slow.php")
    time.sleep(0.1)
    bad = c.request("/crash.php")
    st, _, body = c.response(bad)
    assert st == 502 and b"still alive" not in body
    st, _, body = c.response(slow)
    assert st == 200 and body == b"slow done"
    assert s.wait_log(r"killed by signal 9")
    st, _, body = c.get("/fast.php")
    assert st == 200 and body == b"fast done"
    c.close()


def test_h2c_can_be_turned_off(start_server):
    s = start_server(DOCROOT, env={"TUSK_H2C": "0"})
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
    frames, closed = read_frames(sock, 3)
    assert not any(f[0] == SETTINGS for f in frames)
    sock.close()
    out = subprocess.run(["curl", "-s", "-v", "--http2", s.url("/fast.php")], capture_output=True)
    assert out.stdout == b"fast done"
    assert b"101" not in out.stderr


@pytest.mark.parametrize("settings", [b"", b"%%%%", b"A", b"AAMAAABk=", b"AAMAAAB",  b"A" * 3000])
def test_upgrade_with_a_bad_http2_settings_stays_on_http11(start_server, settings):
    # Malformed base64url, a payload that is not whole 6-byte settings, or
    # an oversized header: no 101, the request is served over HTTP/1.1.
    s = serve(start_server)
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
        sock.sendall(b"GET /fast.php HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\nConnection: close\r\n\r\n")
        buf = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    assert buf.startswith(b"HTTP/1.1 200"), buf[:200]
    assert b"101 Switching" not in buf
    assert_healthy(s)
