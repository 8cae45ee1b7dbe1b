"""`tusk run app.php`: event-driven PHP services through real sockets.
text://, frame://, tcp:// with a PHP protocol class and unix:// services,
groups, uids and broadcast across worker processes, timers, backpressure,
a killed worker and a reload that keep every connection, and the
start/stop/reload/status commands.

Every test that takes the `app` fixture runs twice: with the master holding
the connections (pooled, the default) and with --mode direct (each worker
owns its connections); tests marked pooled_only check what only the first
shape promises."""
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import PHP_DIR, TUSK_BIN

APP = os.path.join(PHP_DIR, "events", "app.php")


class App:
    def __init__(self, script=APP, args=(), workers=2, env=None, mode="pooled"):
        self.mode = mode
        if mode != "pooled":
            args = ["--mode", mode] + list(args)
        self.dir = tempfile.mkdtemp(prefix="tusk-app-")
        self.mark = os.path.join(self.dir, "mark.log")
        self.unix = os.path.join(self.dir, "svc.sock")
        self.pidfile = os.path.join(self.dir, "app.pid")
        self.log = os.path.join(self.dir, "stderr.log")
        e = dict(os.environ, TUSK_TEST_MARK=self.mark, TUSK_TEST_UNIX=self.unix)
        e.update(env or {})
        self.env = e
        self.script = script
        self.proc = subprocess.Popen([TUSK_BIN, "run", script, "--workers", str(workers), "--pid-file",
                                      self.pidfile] + list(args),
                                     stdout=open(os.path.join(self.dir, "stdout.log"), "wb"),
                                     stderr=open(self.log, "wb"), env=e)
        self.ports = {}
        deadline = time.time() + 15
        while time.time() < deadline:
            for m in re.finditer(r"service \d+: (\w+)://127\.0\.0\.1:(\d+) (\w+)", self.text()):
                self.ports[m.group(3)] = int(m.group(2))
            if len(self.ports) >= 3 and self.marks("start") >= workers:
                break
            if self.proc.poll() is not None:
                raise AssertionError("tusk run exited: " + self.text())
            time.sleep(0.05)
        else:
            raise AssertionError("not started: " + self.text())

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def marks(self, what=None):
        try:
            with open(self.mark) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return 0 if what else []
        return sum(1 for x in lines if x.startswith(what + " ")) if what else lines

    def ctl(self, action):
        return subprocess.run([TUSK_BIN, "run", self.script, action, "--pid-file", self.pidfile],
                              capture_output=True, text=True, timeout=30, env=self.env)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(params=["pooled", "direct"])
def app(request):
    mode = request.param
    if mode == "direct" and request.node.get_closest_marker("pooled_only"):
        pytest.skip("the master holds the connections only in pooled mode")
    apps = []

    def start(*a, **kw):
        kw.setdefault("mode", mode)
        x = App(*a, **kw)
        apps.append(x)
        return x
    yield start
    for x in apps:
        x.stop()
        assert x.proc.returncode in (0, -signal.SIGKILL), x.text()


class Line:
    """A text:// client."""

    def __init__(self, port, greet=True):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.f = self.s.makefile("rb")
        self.greeting = self.read() if greet else None

    def read(self):
        line = self.f.readline()
        assert line.endswith(b"\n"), "connection closed: %r" % line
        return line[:-1].decode()

    def ask(self, msg):
        self.s.sendall(msg.encode() + b"\n")
        return self.read()

    def close(self):
        self.s.close()


def test_text_service_echo_ids_and_remote(app):
    a = app()
    c = Line(a.ports["text"])
    assert re.fullmatch(r"hello \d+", c.greeting)
    assert c.ask("abc") == "echo abc"
    assert c.ask("id") == c.greeting.split()[1]
    ip, port = c.ask("remote").split()
    assert ip == "127.0.0.1" and int(port) == c.s.getsockname()[1]
    # \r\n line ends are accepted; several messages in one packet are split.
    c.s.sendall(b"one\r\ntwo\nthree\n")
    assert [c.read(), c.read(), c.read()] == ["echo one", "echo two", "echo three"]
    # A connection's messages go to one worker, in order.
    pids = {c.ask("pid") for _ in range(20)}
    assert len(pids) == 1
    assert c.ask("close") == "bye"
    assert c.f.read() == b""
    c.close()
    deadline = time.time() + 5
    while a.marks("close") < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert a.marks("close") == 1


def test_connections_are_spread_over_workers(app):
    a = app()
    conns = [Line(a.ports["text"]) for _ in range(6)]
    pids = {c.ask("pid") for c in conns}
    # Direct mode: the kernel gives each connection to whichever worker
    # accepts first; both do, soon enough.
    while a.mode == "direct" and len(pids) < 2 and len(conns) < 200:
        conns.append(Line(a.ports["text"]))
        pids.add(conns[-1].ask("pid"))
    assert len(pids) == 2, pids


def frame(data):
    return struct.pack(">I", len(data) + 4) + data


def read_frame(s):
    hdr = b""
    while len(hdr) < 4:
        b = s.recv(4 - len(hdr))
        assert b, "closed"
        hdr += b
    n = struct.unpack(">I", hdr)[0] - 4
    body = b""
    while len(body) < n:
        body += s.recv(n - len(body))
    return body


def test_frame_service_and_its_limits(app):
    a = app()
    s = socket.create_connection(("127.0.0.1", a.ports["frame"]), timeout=5)
    s.sendall(frame(b"abc") + frame(b"line\nwith newline"))
    assert read_frame(s) == b"echo abc"
    assert read_frame(s) == b"echo line\nwith newline"
    # One byte at a time still makes one message.
    for b in frame(b"slow"):
        s.sendall(bytes([b]))
    assert read_frame(s) == b"echo slow"
    s.close()
    # Over maxPackageSize (1000): closed, onError told why.
    s = socket.create_connection(("127.0.0.1", a.ports["frame"]), timeout=5)
    s.sendall(frame(b"x" * 2000))
    assert s.recv(100) == b""
    s.close()
    # A length below the header's own 4 bytes: closed.
    s = socket.create_connection(("127.0.0.1", a.ports["frame"]), timeout=5)
    s.sendall(b"\x00\x00\x00\x02")
    assert s.recv(100) == b""
    s.close()
    deadline = time.time() + 5
    while not any("message too big" in x for x in a.marks()) and time.time() < deadline:
        time.sleep(0.05)
    assert any("message too big" in x for x in a.marks()), a.marks()


def test_text_line_over_the_limit_is_closed(app):
    a = app()
    c = Line(a.ports["text"])
    c.s.sendall(b"y" * (1024 * 1024 + 10))
    assert c.f.read() == b""


def test_php_protocol_class(app):
    a = app()
    s = socket.create_connection(("127.0.0.1", a.ports["len"]), timeout=5)
    s.sendall(b"3:abc5:he")
    s.sendall(b"llo")
    got = b""
    while got.count(b":") < 2 or not got.endswith(b"echo hello"):
        b = s.recv(100)
        assert b, got
        got += b
    assert got == b"8:echo abc10:echo hello"
    # input() says -1: closed.
    s.sendall(b"garbage-without-colon")
    assert s.recv(100) == b""


def test_unix_socket_service(app):
    a = app()
    deadline = time.time() + 5
    while not os.path.exists(a.unix) and time.time() < deadline:
        time.sleep(0.05)
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(a.unix)
    s.sendall(b"ping")
    assert s.recv(100) == b"unix got ping"
    s.close()


def spread_lines(a, n=4):
    """n text:// connections alternating between the two workers (in
    direct mode the kernel picks the worker: connect until both have
    enough)."""
    by_pid = {}
    opened = []
    while len(opened) < 200 and (len(by_pid) < 2 or min(len(v) for v in by_pid.values()) < (n + 1) // 2):
        c = Line(a.ports["text"])
        opened.append(c)
        by_pid.setdefault(c.ask("pid"), []).append(c)
    assert len(by_pid) == 2, by_pid.keys()
    x, y = by_pid.values()
    conns = [(x, y)[i % 2][i // 2] for i in range(n)]
    for c in opened:
        if c not in conns:
            c.close()
    return conns


def test_groups_uids_and_broadcast_across_workers(app):
    a = app()
    conns = spread_lines(a)
    assert conns[0].ask("pid") != conns[1].ask("pid")  # both workers involved
    assert conns[0].ask("join room") == "joined room"
    assert conns[1].ask("join room") == "joined room"
    conns[3].s.sendall(b"group room hi\n")
    assert conns[0].read() == "hi" and conns[1].read() == "hi"
    assert conns[1].ask("leave room") == "left room"
    conns[3].s.sendall(b"group room again\n")
    assert conns[0].read() == "again"
    # One user, two connections (on different workers).
    assert conns[1].ask("bind u7") == "bound u7"
    assert conns[2].ask("bind u7") == "bound u7"
    conns[0].s.sendall(b"touid u7 for-you\n")
    assert conns[1].read() == "for-you" and conns[2].read() == "for-you"
    # Broadcast reaches every connection of every service, the sender too.
    s = socket.create_connection(("127.0.0.1", a.ports["frame"]), timeout=5)
    s.sendall(frame(b"id"))
    read_frame(s)
    conns[3].s.sendall(b"all everyone\n")
    for c in conns:
        assert c.read() == "everyone"
    assert read_frame(s) == b"everyone"
    # A service's broadcast stays in that service.
    conns[0].s.sendall(b"service text-only\n")
    for c in conns:
        assert c.read() == "text-only"
    s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        s.recv(10)


def test_timers_once_repeating_and_cancel(app):
    a = app()
    c = Line(a.ports["text"])
    t0 = time.time()
    assert c.ask("once 0.2") == "armed"
    assert c.read() == "once fired"
    took = time.time() - t0
    assert 0.15 <= took < 2, took
    c.s.sendall(b"every 0.05\n")
    assert [c.read() for _ in range(3)] == ["tick 1", "tick 2", "tick 3"]
    # Cancelled after the third: nothing more.
    c.s.settimeout(0.4)
    with pytest.raises(socket.timeout):
        c.f.readline()


def test_exception_in_a_callback_is_logged_and_the_worker_goes_on(app):
    a = app()
    c = Line(a.ports["text"])
    pid = c.ask("pid")
    c.s.sendall(b"throw\n")
    assert c.ask("pid") == pid
    deadline = time.time() + 5
    while "thrown on purpose" not in a.text() and time.time() < deadline:
        time.sleep(0.05)
    assert "thrown on purpose" in a.text()


def test_buffer_full_and_drain(app):
    a = app()
    c = Line(a.ports["text"])
    c.s.sendall(b"flood 160\n")  # 10 MiB to a client that reads nothing yet
    deadline = time.time() + 5
    while a.marks("full") < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert a.marks("full") == 1, a.marks()
    got = 0
    while got < 160 * 65537:
        b = c.s.recv(1 << 20)
        assert b
        got += len(b)
    assert got == 160 * 65537
    deadline = time.time() + 5
    while a.marks("drain") < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert a.marks("drain") == 1


def test_pause_and_resume_receiving(app):
    a = app()
    c = Line(a.ports["text"])
    assert c.ask("pause 0.5") == "paused"
    t0 = time.time()
    assert c.ask("after") == "echo after"
    assert time.time() - t0 >= 0.35


@pytest.mark.pooled_only
def test_killed_worker_keeps_its_connections(app):
    a = app()
    c = Line(a.ports["text"])
    other = Line(a.ports["text"])
    pid = int(c.ask("pid"))
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline:
        time.sleep(0.1)
        if "killed by signal 9" in a.text():
            break
    # The same connection is served by another worker process.
    new = int(c.ask("pid"))
    assert new != pid
    assert other.ask("abc") == "echo abc"
    assert re.search(r"worker \d+ \(pid %d\) was killed by signal 9" % pid, a.text())
    # And the server is back to two workers.
    deadline = time.time() + 10
    while a.marks("start") < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert a.marks("start") == 3


@pytest.mark.pooled_only
def test_reload_keeps_every_connection_open(app):
    a = app()
    conns = [Line(a.ports["text"]) for _ in range(4)]
    old = {c.ask("pid") for c in conns}
    out = a.ctl("reload")
    assert out.returncode == 0, out.stderr
    deadline = time.time() + 10
    while a.marks("stop") < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert a.marks("stop") == 2, a.marks()  # the old workers ran onWorkerStop
    new = {c.ask("pid") for c in conns}
    assert not (new & old), (old, new)
    assert all(c.ask("x") == "echo x" for c in conns)


def test_status_and_stop_commands(app):
    a = app()
    c = Line(a.ports["text"])
    out = a.ctl("status")
    assert out.returncode == 0, out.stderr
    assert "text://127.0.0.1:%d" % a.ports["text"] in out.stdout
    assert "connections: 1" in out.stdout
    assert out.stdout.count("ready") == 2, out.stdout
    assert re.search(r"worker \d+ pid %s ready, 1 connection\(s\)" % c.ask("pid"), out.stdout), out.stdout
    out = a.ctl("stop")
    assert out.returncode == 0, out.stderr
    assert a.proc.wait(10) == 0
    assert a.marks("stop") == 2  # onWorkerStop ran in both workers
    assert c.f.read() == b""
    assert not os.path.exists(a.pidfile)
    out = a.ctl("status")
    assert out.returncode == 1 and "not running" in out.stderr


def test_daemon_mode(tmp_path):
    pidfile = str(tmp_path / "d.pid")
    logf = str(tmp_path / "d.log")
    env = dict(os.environ, TUSK_TEST_MARK=str(tmp_path / "mark"), TUSK_TEST_UNIX="")
    out = subprocess.run([TUSK_BIN, "run", APP, "-D", "--workers", "1", "--pid-file", pidfile, "--log-file", logf],
                         capture_output=True, text=True, timeout=20, env=env)
    assert out.returncode == 0, out.stderr
    assert "started in the background" in out.stdout
    try:
        deadline = time.time() + 10
        while not os.path.exists(pidfile) and time.time() < deadline:
            time.sleep(0.05)
        port = None
        while port is None and time.time() < deadline:
            m = re.search(r"text://127\.0\.0\.1:(\d+)", open(logf).read())
            port = m and int(m.group(1))
            time.sleep(0.05)
        c = Line(port)
        assert c.ask("q") == "echo q"
    finally:
        out = subprocess.run([TUSK_BIN, "run", APP, "stop", "--pid-file", pidfile], capture_output=True, text=True,
                             timeout=30, env=env)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("src,msg", [
    ("<?php echo 'no services';", "declared no service"),
    ("<?php new Tusk\\Worker('ftp://127.0.0.1:0'); Tusk\\Worker::runAll();", "unknown scheme 'ftp'"),
    ("<?php new Tusk\\Worker('text://127.0.0.1'); Tusk\\Worker::runAll();", "HOST:PORT"),
    ("<?php throw new Exception('boom');", "failed before declaring"),
])
def test_bad_apps_fail_with_a_clear_error(tmp_path, src, msg):
    p = tmp_path / "bad.php"
    p.write_text(src)
    out = subprocess.run([TUSK_BIN, "run", str(p), "--workers", "1", "--pid-file", str(tmp_path / "p")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert msg in out.stderr, out.stderr


def test_missing_script_and_bad_action():
    out = subprocess.run([TUSK_BIN, "run"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2 and "needs the application script" in out.stderr
    out = subprocess.run([TUSK_BIN, "run", "/nonexistent/app.php"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2 and "cannot open the application script" in out.stderr
    out = subprocess.run([TUSK_BIN, "run", APP, "restartx"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2 and "one of start, stop, reload, status" in out.stderr


# --------------------------------------------------------------------------- websocket://

import asyncio
import base64
import hashlib
import zlib

import websockets


class WS:
    """A raw RFC 6455 client (frames we control)."""

    def __init__(self, port, path="/chat?room=1", extra=b"", expect=101):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.key = base64.b64encode(os.urandom(16))
        self.s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       b"Sec-WebSocket-Key: " + self.key + b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            b = self.s.recv(4096)
            assert b, self.buf
            self.buf += b
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode()
        self.status = int(self.head.split()[1])
        assert self.status == expect, self.head
        if expect == 101:
            acc = base64.b64encode(hashlib.sha1(self.key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
            assert "Sec-WebSocket-Accept: " + acc in self.head

    def send(self, payload, op=1, fin=True, rsv=0, mask=True):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | rsv | op
        n = len(payload)
        hdr = bytes([b0])
        m = 0x80 if mask else 0
        if n < 126:
            hdr += bytes([m | n])
        elif n < 65536:
            hdr += bytes([m | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([m | 127]) + struct.pack(">Q", n)
        if mask:
            k = os.urandom(4)
            payload = bytes(x ^ k[i % 4] for i, x in enumerate(payload))
            hdr += k
        self.s.sendall(hdr + payload)

    def _need(self, n):
        while len(self.buf) < n:
            b = self.s.recv(65536)
            if not b:
                raise EOFError("closed")
            self.buf += b

    def frame(self):
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, at = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, at = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, at = struct.unpack(">Q", self.buf[2:10])[0], 10
        assert not (b1 & 0x80), "server frames are not masked"
        self._need(at + n)
        payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
        return b0 & 0x0F, payload, b0 & 0x70

    def recv(self):
        op, p, _ = self.frame()
        return p.decode() if op == 1 else p

    def close_code(self):
        op, p, _ = self.frame()
        assert op == 8, (op, p)
        return struct.unpack(">H", p[:2])[0] if len(p) >= 2 else 1005


def test_websocket_handshake_messages_and_close(app):
    a = app()
    c = WS(a.ports["ws"])
    hello = c.recv()
    assert re.fullmatch(r"welcome \d+ /chat\?room=1", hello), hello
    c.send("hello")
    assert c.recv() == "echo hello"
    # Fragmented text, with a ping between the fragments.
    c.send("frag", op=1, fin=False)
    c.send(b"", op=9)
    c.send("mented", op=0, fin=True)
    op, p, _ = c.frame()
    assert op == 10  # pong first
    assert c.recv() == "echo fragmented"
    # UTF-8 both ways; a binary message from PHP.
    c.send("héllo €")
    assert c.recv() == "echo héllo €"
    c.send("binary")
    op, p, _ = c.frame()
    assert op == 2 and p == b"\x00\x01\xff"
    # Groups reach WebSocket clients like the others.
    other = Line(a.ports["text"])
    assert c.recv() if False else True
    c.send("join wsroom")
    assert c.recv() == "joined wsroom"
    other.s.sendall(b"group wsroom from-text\n")
    assert c.recv() == "from-text"
    # The close handshake, initiated by the client.
    c.send(struct.pack(">H", 1000) + b"bye", op=8)
    assert c.close_code() == 1000
    assert c.s.recv(10) == b""
    deadline = time.time() + 5
    while a.marks("wsclose") < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert a.marks("wsclose") == 1


def test_websocket_message_type_reaches_php(app):
    a = app()
    c = WS(a.ports["ws"])
    c.recv()
    # Binary messages are flagged as such in PHP ($c->lastMessageBinary), even
    # when their bytes are valid UTF-8, empty, fragmented or follow a text one.
    c.send(b"\x00\xff", op=2)
    assert c.frame()[:2] == (2, b"bin \x00\xff")
    c.send(b"plain ascii", op=2)
    assert c.frame()[:2] == (2, b"bin plain ascii")
    c.send(b"", op=2)
    assert c.frame()[:2] == (2, b"bin ")
    c.send("text again")
    assert c.frame()[:2] == (1, b"echo text again")
    c.send(b"frag", op=2, fin=False)
    c.send(b"mented", op=0, fin=True)
    assert c.frame()[:2] == (2, b"bin fragmented")
    c.send("")
    assert c.frame()[:2] == (1, b"echo ")


def test_websocket_server_close_and_large_messages(app):
    a = app()
    c = WS(a.ports["ws"])
    c.recv()
    c.send("big")
    assert c.recv() == "z" * 200000
    c.send("x" * 60000)
    assert c.recv() == "echo " + "x" * 60000
    c.send("close")
    assert c.recv() == "bye"
    assert c.close_code() == 1000
    c.send(struct.pack(">H", 1000), op=8)
    assert c.s.recv(10) == b""


@pytest.mark.parametrize("name,frames,code", [
    ("unmasked", [dict(payload="x", mask=False)], 1002),
    ("reserved bit", [dict(payload="x", rsv=0x20)], 1002),
    ("bad opcode", [dict(payload="x", op=3)], 1002),
    ("continuation first", [dict(payload="x", op=0)], 1002),
    ("fragmented ping", [dict(payload="x", op=9, fin=False)], 1002),
    ("invalid utf-8", [dict(payload=b"\xc3\x28")], 1007),
    ("overlong utf-8", [dict(payload=b"\xc0\xaf")], 1007),
    ("too big", [dict(payload="y" * 70000)], 1009),
    ("bad close code", [dict(payload=struct.pack(">H", 999), op=8)], 1002),
])
def test_websocket_bad_frames_get_the_right_close_code(app, name, frames, code):
    a = app()
    c = WS(a.ports["ws"])
    c.recv()
    for f in frames:
        c.send(**f)
    assert c.close_code() == code, name
    c.s.settimeout(5)
    rest = b""
    while True:
        b = c.s.recv(100)
        if not b:
            break
        rest += b
    # The server stays healthy.
    d = WS(a.ports["ws"])
    d.recv()
    d.send("ok")
    assert d.recv() == "echo ok"


@pytest.mark.parametrize("req,status", [
    (b"POST / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 405),
    (b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", 426),
    (b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 426),
    (b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", 400),
    (b"GARBAGE\r\n\r\n", 400),
])
def test_websocket_bad_handshakes_are_refused(app, req, status):
    a = app()
    s = socket.create_connection(("127.0.0.1", a.ports["ws"]), timeout=5)
    s.sendall(req)
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:200]
    assert a.marks("wsclose") == 0


def test_websocket_permessage_deflate_with_a_real_client(app):
    a = app()

    async def go():
        uri = "ws://127.0.0.1:%d/deflate" % a.ports["ws"]
        async with websockets.connect(uri, compression="deflate") as ws:
            ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
            assert "permessage-deflate" in ext and "server_no_context_takeover" in ext, ext
            assert (await ws.recv()).startswith("welcome ")
            msg = "compress me " * 500
            await ws.send(msg)
            assert await ws.recv() == "echo " + msg
            await ws.send("big")
            assert await ws.recv() == "z" * 200000
    asyncio.run(go())


def test_websocket_compressed_frames_on_the_wire(app):
    a = app()
    c = WS(a.ports["ws"], extra=b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
    assert "permessage-deflate" in c.head
    c.recv()
    co = zlib.compressobj(wbits=-15)
    data = co.compress(b"A" * 1000) + co.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    c.send(data[:-4], rsv=0x40)  # RSV1: compressed
    op, p, rsv = c.frame()
    assert op == 1 and rsv == 0x40, (op, rsv)
    assert zlib.decompressobj(wbits=-15).decompress(p + b"\x00\x00\xff\xff") == b"echo " + b"A" * 1000


@pytest.mark.pooled_only
def test_websocket_connections_survive_a_reload(app):
    a = app()
    c = WS(a.ports["ws"])
    c.recv()
    c.send("pid")
    old = c.recv()
    assert a.ctl("reload").returncode == 0
    deadline = time.time() + 10
    while a.marks("stop") < 2 and time.time() < deadline:
        time.sleep(0.05)
    c.send("pid")
    assert c.recv() != old
    c.send("still")
    assert c.recv() == "echo still"


def test_websocket_idle_ping_and_dead_peer(app):
    a = app(args=["--websocket-ping", "0.3"])
    c = WS(a.ports["ws"])
    c.recv()
    # Silent: pinged after 0.3 s; answering keeps the connection.
    op, p, _ = c.frame()
    assert op == 9
    c.send(p, op=10)
    c.send("alive")
    assert c.recv() == "echo alive"
    # Not answering: closed with 1001 after about two periods.
    op, p, _ = c.frame()
    assert op == 9
    assert c.close_code() == 1001


def test_web_requests_push_to_app_clients(app, tmp_path):
    # A `tusk serve` request reaches the WebSocket and text clients of a
    # `tusk run` app through its control socket (TUSK_APP_SOCKET).
    from conftest import Server
    a = app()
    sock = a.pidfile[:-4] + ".sock"
    assert os.path.exists(sock), a.text()
    assert "control socket: " + sock in a.text()
    ws = WS(a.ports["ws"])
    ws.recv()
    ws.send("join news")
    assert ws.recv() == "joined news"
    ws.send("bind user42")
    assert ws.recv() == "bound user42"
    t = Line(a.ports["text"])
    web = Server(os.path.join(PHP_DIR, "events_web"), env={"TUSK_APP_SOCKET": sock})
    try:
        import urllib.request
        def get(q):
            return urllib.request.urlopen(web.url("/push.php?" + q), timeout=10).read().decode()
        assert get("kind=group&to=news&msg=headline") == "sent"
        assert ws.recv() == "headline"
        assert get("kind=uid&to=user42&msg=private") == "sent"
        assert ws.recv() == "private"
        assert get("kind=all&msg=to-all") == "sent"
        assert ws.recv() == "to-all" and t.read() == "to-all"
        # The app restarted (its socket is gone): false and a warning, no crash.
        a.stop()
        assert get("kind=all&msg=x").endswith("failed")  # and a PHP warning saying why
    finally:
        web.stop()


def test_async_clients_inside_a_worker(app):
    a = app()
    c = Line(a.ports["text"])
    # text:// client to the app's own text service.
    c.s.sendall(b"fetch %d\n" % a.ports["text"])
    got = c.read()
    assert got.startswith("via client: 127.0.0.1 "), got
    assert c.read() == "client closed"
    # ws:// client (handshake, masked frames, a 60 KB message).
    c.s.sendall(b"wsfetch %d\n" % a.ports["ws"])
    assert c.read() == "ws client got %d echo w" % (60000 + 5)
    assert c.read() == "ws client closed"
    # A refused connection: onError, then onClose; the worker goes on.
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = free.getsockname()[1]
    c.s.sendall(b"fetch %d\n" % dead)
    assert c.read().startswith("client error: cannot connect")
    assert c.read() == "client closed"
    assert c.ask("x") == "echo x"


def test_udp_service(app):
    a = app()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.sendto(b"ping", ("127.0.0.1", a.ports["udp"]))
    data, addr = u.recvfrom(2048)
    assert data == b"udp ping from 127.0.0.1" and addr[1] == a.ports["udp"]
    # Datagrams are spread over the workers; each is answered.
    pids = set()
    for i in range(200):
        u.sendto(b"pid", ("127.0.0.1", a.ports["udp"]))
        pids.add(u.recvfrom(2048)[0])
        if i >= 9 and (len(pids) == 2 or a.mode == "pooled"):
            break
    assert len(pids) == 2, pids
    # A large datagram and an empty one.
    u.sendto(b"x" * 60000, ("127.0.0.1", a.ports["udp"]))
    assert u.recvfrom(65536)[0] == b"udp " + b"x" * 60000 + b" from 127.0.0.1"
    u.sendto(b"", ("127.0.0.1", a.ports["udp"]))
    assert u.recvfrom(2048)[0] == b"udp  from 127.0.0.1"


@pytest.mark.pooled_only
@pytest.mark.parametrize("mode", ["pooled", "direct"])
def test_websocket_on_the_http_port_is_handed_to_the_app(app, mode):
    # `tusk serve --websocket-app SOCK`: an Upgrade: websocket request on the
    # HTTP port goes, socket and all, to the `tusk run` app; other requests
    # on that port are served as usual.
    from conftest import Server
    a = app()
    sock = a.pidfile[:-4] + ".sock"
    web = Server(os.path.join(PHP_DIR, "events_web"), ["--websocket-app", sock, "--mode", mode])
    try:
        c = WS(web.port, path="/live?x=1")
        assert re.fullmatch(r"welcome \d+ /live\?x=1", c.recv())
        c.send("hello")
        assert c.recv() == "echo hello"
        c.send("pid")
        assert int(c.recv()) != web.proc.pid
        import urllib.request
        assert urllib.request.urlopen(web.url("/push.php?kind=all&msg=x"), timeout=10).status == 200
        c.send(struct.pack(">H", 1000), op=8)
        assert c.close_code() == 1000
    finally:
        web.stop()
    # With the app gone: 503, not a hang.
    a.stop()
    web = Server(os.path.join(PHP_DIR, "events_web"), ["--websocket-app", sock, "--mode", mode])
    try:
        WS(web.port, expect=503)
    finally:
        web.stop()


def test_running_out_of_descriptors_is_logged_and_survived(tmp_path):
    # libuv drops clients silently once the descriptors are gone: the master
    # says so in its log, and keeps serving the connections it has.
    log = tmp_path / "log"
    env = dict(os.environ, TUSK_TEST_MARK=str(tmp_path / "mark"), TUSK_TEST_UNIX="")
    p = subprocess.Popen(["bash", "-c", 'ulimit -n 128; exec "$0" run "$1" --workers 1 --pid-file "$2"', TUSK_BIN,
                          APP, str(tmp_path / "p.pid")], stderr=open(log, "wb"), env=env)
    try:
        deadline = time.time() + 15
        port = None
        while port is None and time.time() < deadline:
            m = re.search(r"text://127\.0\.0\.1:(\d+)", log.read_text())
            port = m and int(m.group(1))
            time.sleep(0.05)
        assert "open-files limit 128" in log.read_text()
        first = Line(port)
        socks = []
        for _ in range(150):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                pass
        deadline = time.time() + 5
        while "raise ulimit -n" not in log.read_text() and time.time() < deadline:
            time.sleep(0.05)
        assert "raise ulimit -n" in log.read_text(), log.read_text()
        for s in socks:
            s.close()
        assert first.ask("still") == "echo still"
        assert p.poll() is None
    finally:
        p.terminate()
        p.wait(10)


# --------------------------------------------------------------------------- --mode direct

def test_direct_mode_killed_worker_closes_only_its_connections():
    # Each worker owns its connections: a killed one takes its own along
    # (said in the log), the others' stay, and a new worker serves new ones.
    a = App(mode="direct")
    try:
        mine, other = spread_lines(a, 2)
        pid = int(mine.ask("pid"))
        os.kill(pid, signal.SIGKILL)
        assert mine.f.read() == b""
        assert other.ask("still") == "echo still"
        deadline = time.time() + 10
        while a.marks("start") < 3 and time.time() < deadline:
            time.sleep(0.05)
        assert a.marks("start") == 3
        assert re.search(r"worker \d+ \(pid %d\) was killed by signal 9.*1 connection\(s\) are gone \(--mode direct"
                         % pid, a.text()), a.text()
        pids = {Line(a.ports["text"]).ask("pid") for _ in range(20)}
        assert str(pid) not in pids
    finally:
        a.stop()


def test_direct_mode_reload_replaces_workers_and_their_connections():
    # A reload starts new workers; the old ones run onWorkerStop and close
    # their connections (WebSocket clients get 1001, going away).
    a = App(mode="direct")
    try:
        t = Line(a.ports["text"])
        old_pid = t.ask("pid")
        w = WS(a.ports["ws"])
        w.recv()
        w.send("pid")
        old_ws_pid = w.recv()
        assert a.ctl("reload").returncode == 0
        deadline = time.time() + 10
        while a.marks("stop") < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert a.marks("stop") == 2, a.marks()
        assert t.f.read() == b""
        assert w.close_code() == 1001
        old = {old_pid, old_ws_pid}
        for _ in range(10):
            assert Line(a.ports["text"]).ask("pid") not in old
        assert "the old ones close their connections" in a.text()
    finally:
        a.stop()


def test_direct_mode_pushes_from_other_processes_reach_every_worker():
    # A push from another process (the frame Tusk\send_to_group() writes to
    # the control socket) is relayed by the master to every worker.
    a = App(mode="direct")
    try:
        conns = spread_lines(a, 2)
        for c in conns:
            assert c.ask("join news") == "joined news"
        sock = a.pidfile[:-4] + ".sock"
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        payload = struct.pack("<Q", 0) + struct.pack(">H", 4) + b"news" + b"extra!"
        s.sendall(struct.pack("<IBBH", len(payload), 48, 0, 0) + payload)
        for c in conns:
            assert c.read() == "extra!"
        s.close()
    finally:
        a.stop()


def test_direct_mode_refuses_websocket_handoff_from_the_http_port():
    from conftest import Server
    a = App(mode="direct")
    web = Server(os.path.join(PHP_DIR, "events_web"), ["--websocket-app", a.pidfile[:-4] + ".sock"])
    try:
        with pytest.raises((AssertionError, EOFError, ConnectionError)):
            c = WS(web.port, path="/live")
            c.recv()
        deadline = time.time() + 5
        while "--mode direct cannot take it" not in a.text() and time.time() < deadline:
            time.sleep(0.05)
        assert "--mode direct cannot take it (use --mode pooled)" in a.text()
    finally:
        web.stop()
        a.stop()


# --------------------------------------------------------------------------- http://

import http.client
import json


def http_req(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r, data


def raw_http(port, data, timeout=5):
    """Sends data, reads until the server closes (a timeout fails)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out


def test_http_get_query_headers_cookies(app):
    a = app()
    p = a.ports["http"]
    r, body = http_req(p, "GET", "/hello")
    assert r.status == 200 and body == b"Hello, World!"
    assert r.getheader("content-type") == "text/html; charset=utf-8" and r.getheader("content-length") == "13"
    r, body = http_req(p, "GET", "/info?a=1&b%5B%5D=2&b%5B%5D=3&s=x+y",
                       headers={"X-Test": "yes", "Cookie": "sid=abc; n=%41"})
    j = json.loads(body)
    assert r.status == 200 and r.getheader("content-type") == "application/json"
    assert j["method"] == "GET" and j["path"] == "/info" and j["query"] == "a=1&b%5B%5D=2&b%5B%5D=3&s=x+y"
    assert j["get"] == {"a": "1", "b": ["2", "3"], "s": "x y"}
    assert j["x"] == "yes" and j["headers"]["x-test"] == "yes" and j["host"] == "127.0.0.1"
    assert j["cookie"] == {"sid": "abc", "n": "A"} and j["version"] == "1.1"
    r, body = http_req(p, "GET", "/nope")
    assert r.status == 404 and body == b"not found\n"
    r, body = http_req(p, "GET", "/cookie")
    assert r.status == 201 and body == b"made"
    assert r.getheader("set-cookie") == "sid=a%20b; Max-Age=60; Path=/; HttpOnly"
    assert r.msg.get_all("x-multi") == ["one", "two"]


def test_http_post_form_json_and_multipart_upload(app):
    a = app()
    p = a.ports["http"]
    r, body = http_req(p, "POST", "/info", body="x=1&y=h%C3%A9llo&arr%5Bk%5D=v",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert json.loads(body)["post"] == {"x": "1", "y": "héllo", "arr": {"k": "v"}}
    r, body = http_req(p, "POST", "/info", body='{"j": [1, 2], "s": "t"}', headers={"Content-Type": "application/json"})
    assert json.loads(body)["post"] == {"j": [1, 2], "s": "t"}
    content = os.urandom(100000)
    bnd = "----tuskboundary7"
    mp = ("--%s\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue 1\r\n"
          "--%s\r\nContent-Disposition: form-data; name=\"tags[]\"\r\n\r\na\r\n"
          "--%s\r\nContent-Disposition: form-data; name=\"tags[]\"\r\n\r\nb\r\n"
          "--%s\r\nContent-Disposition: form-data; name=\"up\"; filename=\"data.bin\"\r\n"
          "Content-Type: application/octet-stream\r\n\r\n" % (bnd, bnd, bnd, bnd)).encode() + content + \
         ("\r\n--%s--\r\n" % bnd).encode()
    r, body = http_req(p, "POST", "/info", body=mp, headers={"Content-Type": "multipart/form-data; boundary=" + bnd})
    j = json.loads(body)
    assert j["post"] == {"field": "value 1", "tags": ["a", "b"]}
    f = j["files"]["up"]
    assert f["name"] == "data.bin" and f["size"] == 100000 and f["type"] == "application/octet-stream"
    assert f["sha1"] == hashlib.sha1(content).hexdigest()
    # The upload's temporary file is gone with the request.
    deadline = time.time() + 5
    while os.path.exists(f["tmp"]) and time.time() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f["tmp"])


def test_http_keep_alive_pipelining_and_close(app):
    a = app()
    p = a.ports["http"]
    # Several requests on one connection, answered in order.
    conn = http.client.HTTPConnection("127.0.0.1", p, timeout=10)
    for i in range(5):
        conn.request("GET", "/info?i=%d" % i)
        r = conn.getresponse()
        assert json.loads(r.read())["get"] == {"i": str(i)}
        assert r.getheader("connection") == "keep-alive"
    conn.close()
    # Pipelined in one packet.
    out = raw_http(p, b"".join(b"GET /info?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(3)) +
                   b"GET /info?n=last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK") == 4
    ns = re.findall(rb'"n":"(\w+)"', out)
    assert ns == [b"0", b"1", b"2", b"last"], out[:500]
    assert out.rstrip().endswith(b"}") and b"Connection: close" in out
    # HTTP/1.0 without keep-alive: answered, then closed.
    out = raw_http(p, b"GET /hello HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK") and out.endswith(b"Hello, World!") and b"Connection: close" in out
    # HEAD: the headers of the GET, no body.
    out = raw_http(p, b"HEAD /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert b"Content-Length: 13" in out and out.endswith(b"\r\n\r\n")
    # A response sent later (from a timer).
    r, body = http_req(p, "GET", "/later?n=7")
    assert body == b"later 7"


def test_http_chunked_body_expect_continue_and_large_response(app):
    a = app()
    p = a.ports["http"]
    data = os.urandom(50000)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 7000]), data[i:i + 7000]) for i in range(0, len(data), 7000))
    out = raw_http(p, b"POST /info HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
                   chunks + b"0\r\n\r\n")
    j = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert j["body_len"] == 50000 and j["body_sha1"] == hashlib.sha1(data).hexdigest()
    # Expect: 100-continue is answered before the body is sent.
    s = socket.create_connection(("127.0.0.1", p), timeout=5)
    s.sendall(b"POST /info HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(b"hello")
    got = b""
    while b'"body_len":5' not in got:
        b = s.recv(65536)
        assert b
        got += b
    s.close()
    r, body = http_req(p, "GET", "/big")
    assert r.status == 200 and len(body) == 1 << 20 and body[:16] == b"0123456789abcdef"


@pytest.mark.parametrize("origin,status", [
    (None, 101),                        # not a browser
    (b"https://good.example", 101),
    (b"HTTPS://Good.Example", 101),
    (b"https://chat.eu.tusk.test", 101),
    (b"https://evil.example", 403),
    (b"http://good.example", 403),      # another scheme
    (b"https://tusk.test", 403),        # *.tusk.test needs a subdomain
    (b"null", 403),
])
def test_websocket_origin_check(app, origin, status):
    # allowedOrigins on the service: other browsers' origins get 403 from C.
    a = app()
    c = WS(a.ports["ws"], extra=b"Origin: " + origin + b"\r\n" if origin else b"", expect=status)
    if status == 101:
        assert re.fullmatch(r"welcome \d+ /chat\?room=1", c.recv())
    else:
        assert "origin not allowed" in c.s.recv(4096).decode() + c.buf.decode()


@pytest.mark.parametrize("req,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/2.5\r\nHost: t\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 300000\r\n\r\n", 413),
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
])
def test_http_bad_requests_are_answered_and_closed(app, req, status):
    a = app()
    p = a.ports["http"]
    out = raw_http(p, req)
    assert out.startswith(b"HTTP/1.1 %d " % status), out[:200]
    assert b"Connection: close" in out
    # The service goes on.
    r, body = http_req(p, "GET", "/hello")
    assert body == b"Hello, World!"


def test_http_chunked_body_over_the_limit_is_413(app):
    a = app()
    big = b"".join(b"4000\r\n" + b"x" * 0x4000 + b"\r\n" for _ in range(20))  # 320 KiB > 256 KiB
    out = raw_http(a.ports["http"], b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + big)
    assert out.startswith(b"HTTP/1.1 413 "), out[:100]


def test_http_exception_in_handler_is_500_and_logged(app):
    a = app()
    r, body = http_req(a.ports["http"], "GET", "/throw")
    assert r.status == 500
    assert "http handler failed" in a.text()
    r, body = http_req(a.ports["http"], "GET", "/hello")
    assert r.status == 200


def test_http_random_bodies_never_break_the_worker(app):
    # The PHP side parses form, JSON and multipart bodies: random and
    # truncated ones give a 200 with what could be read, never a dead worker.
    a = app()
    p = a.ports["http"]
    rnd = __import__("random").Random(7)
    bnd = "b0und"
    good = ("--%s\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nabc\r\n--%s--\r\n"
            % (bnd, bnd)).encode()
    for i in range(60):
        kind = i % 3
        if kind == 0:
            body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400)))
        elif kind == 1:
            cut = rnd.randrange(len(good))
            body = good[:cut] + bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 20)))
        else:
            body = bytes(rnd.choice(b"&=[]%a") for _ in range(rnd.randrange(1, 200)))
        ctype = ["multipart/form-data; boundary=" + bnd, "application/json",
                 "application/x-www-form-urlencoded"][kind if i % 2 else 0]
        r, data = http_req(p, "POST", "/info", body=body, headers={"Content-Type": ctype})
        assert r.status == 200, (i, r.status, data[:200])
        json.loads(data)
    assert "PHP Fatal" not in a.text()


def test_http_slow_requests_get_408(app):
    # A head not complete within --header-timeout of its first byte (even
    # one trickling in), or a body with no bytes for --body-timeout: 408.
    a = app(args=["--header-timeout", "1", "--body-timeout", "1"])
    p = a.ports["http"]
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n")
    for _ in range(4):  # a byte every 0.4 s keeps nothing alive
        time.sleep(0.4)
        try:
            s.sendall(b"X")
        except OSError:
            break
    out = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        out += b
    assert out.startswith(b"HTTP/1.1 408 "), out[:100]
    assert 1.0 <= time.time() - t0 < 5
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    s.sendall(b"POST /info HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    out = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        out += b
    assert out.startswith(b"HTTP/1.1 408 ") and b"request body stalled" in out, out[:200]
    # A quiet keep-alive connection with nothing pending is not cut.
    conn = http.client.HTTPConnection("127.0.0.1", p, timeout=10)
    conn.request("GET", "/hello")
    assert conn.getresponse().read() == b"Hello, World!"
    time.sleep(2.2)
    conn.request("GET", "/hello")
    assert conn.getresponse().read() == b"Hello, World!"
    conn.close()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.pooled_only
def test_flooding_a_slow_worker_meets_backpressure(app):
    # A client sends far faster than PHP handles its messages: past the
    # worker's backlog bound the master stops reading that client (TCP
    # backpressure) instead of queueing without end.
    a = app()
    before = rss_kb(a.proc.pid)
    s = socket.create_connection(("127.0.0.1", a.ports["text"]), timeout=5)
    s.recv(100)  # the greeting
    line = b"hog " + b"x" * 1000 + b"\n"
    chunk = line * 256
    sent = 0
    s.setblocking(False)
    deadline = time.time() + 4
    while time.time() < deadline:
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            time.sleep(0.01)
    grown = rss_kb(a.proc.pid) - before
    print("flood: sent %d bytes, master grew %d kB" % (sent, grown))
    # Without the bound all of it (and the event framing) would sit in the
    # master: ~20 MB/s here. With it: ~8 MiB of backlog plus socket buffers.
    assert sent < 60 * 1024 * 1024, sent
    if "ASAN_OPTIONS" not in os.environ:  # ASan's quarantine keeps freed memory
        assert grown < 40 * 1024, (grown, sent)
    s.close()
    # The backlog drains and the service answers again.
    deadline = time.time() + 20
    while True:
        try:
            c = Line(a.ports["text"])
            assert c.ask("abc") == "echo abc"
            break
        except (AssertionError, socket.timeout, OSError):
            assert time.time() < deadline, "no answer after the flood"
