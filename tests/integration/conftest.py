"""Shared fixtures: start the real tusk binary on an ephemeral port.

Every test talks to it through real sockets; fixtures under php/<case>/ are
real PHP run by the real embedded interpreter.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TUSK_BIN = os.environ.get("TUSK_BIN", os.path.join(ROOT, "build", "tusk"))
TEST_MODE = os.environ.get("TUSK_TEST_MODE", "pooled")
PHP_DIR = os.path.join(HERE, "php")


class Server:
    """A running tusk process. stderr goes to a file that tests can read."""

    def __init__(self, docroot, args=(), env=None, workers=2):
        self.docroot = docroot
        self.logdir = tempfile.mkdtemp(prefix="tusk-log-")
        self.logpath = os.path.join(self.logdir, "stderr.log")
        self.logfile = open(self.logpath, "wb")
        cmd = [TUSK_BIN, "serve", docroot, "--listen", "127.0.0.1:0", "--workers", str(workers)] + list(args)
        # TUSK_TEST_MODE=direct runs the same tests against direct mode
        # (tests/integration/CMakeLists.txt registers those runs).
        mode = os.environ.get("TUSK_TEST_MODE")
        if mode and "--mode" not in args:
            cmd += ["--mode", mode]
        full_env = dict(os.environ)
        full_env.pop("TUSK_LISTEN", None)
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.logfile, env=full_env)
        self.port = None
        deadline = time.time() + 15
        while time.time() < deadline:
            m = re.search(r"on http://127\.0\.0\.1:(\d+)", self.log())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError("tusk exited with %s: %s" % (self.proc.returncode, self.log()))
            time.sleep(0.02)
        if self.port is None:
            self.stop()
            raise RuntimeError("tusk did not start: " + self.log())
        # Wait until the workers answer.
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.02)

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def url(self, path="/"):
        return self.base + path

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.log()):
                return True
            time.sleep(0.05)
        return False

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def worker_pids(self):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(x) for x in out.stdout.split()]

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logfile.close()
        return self.proc.returncode


@pytest.fixture
def start_server():
    """start_server(docroot, *args, env=None, workers=2) -> Server; stopped after the test."""
    servers = []

    def start(docroot, *args, env=None, workers=2):
        s = Server(docroot, args, env=env, workers=workers)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()
        # A crash of the master during the test is a failure of the test.
        assert s.proc.returncode in (0, -signal.SIGTERM, -signal.SIGKILL), s.log()
        shutil.rmtree(s.logdir, ignore_errors=True)


@pytest.fixture
def php_case():
    """php_case('basic') -> absolute path of tests/integration/php/basic."""
    return lambda name: os.path.join(PHP_DIR, name)


def raw_request(port, data, timeout=5.0, read_until_close=True):
    """Sends raw bytes and returns everything the server sent until it closed
    the connection (or the timeout passed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if data:
            s.sendall(data)
        chunks = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
            if not read_until_close:
                break
        return b"".join(chunks)
    finally:
        s.close()


def parse_responses(data):
    """Splits raw bytes into a list of (status, headers(dict, lower-case), body)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        body = b""
        if status in (100, 101, 103) :
            out.append((status, headers, body))
            data = rest
            continue
        if "content-length" in headers:
            n = int(headers["content-length"])
            body, rest = rest[:n], rest[n:]
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, _, rest = rest.partition(b"\r\n")
                    break
                body += rest[:size]
                rest = rest[size + 2:]
        else:
            body, rest = rest, b""
        out.append((status, headers, body))
        data = rest
    return out


def pytest_configure(config):
    config.addinivalue_line("markers", "pooled_only: `tusk run` tests of what only its pooled mode promises")
