"""Process model: worker crashes, slow clients, the queue, request timeouts,
reloads, draining, shared memory across workers, configuration, and file
descriptor hygiene of PHP workers.

Everything goes through the real tusk binary, real sockets and real PHP
(fixtures in php/process/)."""
import hashlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from conftest import TUSK_BIN, PHP_DIR, parse_responses

DOCROOT = os.path.join(PHP_DIR, "process")


# ---- helpers ------------------------------------------------------------------------


def wait_for(cond, timeout=5.0, step=0.02):
    """Polls cond() until it returns something truthy; returns that or None."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() >= deadline:
            return None
        time.sleep(step)


def wait_workers(s, n, exclude=(), timeout=5.0):
    """Waits until the master has exactly n workers, none of them in exclude."""
    exclude = set(exclude)

    def ok():
        pids = s.worker_pids()
        return pids if len(pids) == n and not exclude & set(pids) else None

    pids = wait_for(ok, timeout)
    assert pids, "expected %d workers not in %s, have %s\n%s" % (n, sorted(exclude), s.worker_pids(), s.log())
    return pids


def log_lines(s, pattern):
    return [l for l in s.log().splitlines() if re.search(pattern, l)]


def http_get(port, path, extra=b"", timeout=5.0):
    """One GET on a fresh connection (Connection: close); returns (status, headers, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra + b"\r\n")
        return read_response(s, timeout)
    finally:
        s.close()


def read_response(sock, timeout=5.0):
    """Reads until the server closes; returns the one (status, headers, body)."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        b = sock.recv(1 << 20)
        if not b:
            break
        chunks.append(b)
    resps = parse_responses(b"".join(chunks))
    assert len(resps) == 1, resps
    return resps[0]


def read_one_keepalive(sock, timeout=5.0):
    """Reads exactly one Content-Length response from a keep-alive connection."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        b = sock.recv(65536)
        assert b, "connection closed: %r" % data
        data += b
    head, _, rest = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    assert m, head
    n = int(m.group(1))
    while len(rest) < n:
        b = sock.recv(65536)
        assert b
        rest += b
    return int(head.split()[1]), rest[:n]


class Proc:
    """A tusk started by hand (no --listen/--workers flags forced), for the
    configuration tests."""

    def __init__(self, args, env):
        self.logfd, self.logpath = tempfile.mkstemp(prefix="tusk-cfg-")
        full = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")}
        full.update(env)
        self.proc = subprocess.Popen([TUSK_BIN] + args, stdout=subprocess.DEVNULL, stderr=self.logfd, env=full)

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_serving(self):
        m = wait_for(lambda: re.search(r"on http://127\.0\.0\.1:(\d+)", self.log()) or self.proc.poll() is not None,
                     10)
        assert m and m is not True, "did not start: rc=%s %s" % (self.proc.poll(), self.log())
        return int(m.group(1))

    def worker_pids(self):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(x) for x in out.stdout.split()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self.logfd)
        os.unlink(self.logpath)
        return self.proc.returncode


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_fail(args, env=None):
    """Runs tusk expecting it to refuse to start; returns (rc, stderr)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")}
    full.update(env or {})
    r = subprocess.run([TUSK_BIN] + args, capture_output=True, text=True, env=full, timeout=10)
    return r.returncode, r.stderr


# ---- 1. worker crash ---------------------------------------------------------------------


def test_worker_crash_gives_502_logs_it_and_replaces_the_worker(start_server):
    s = start_server(DOCROOT, workers=2)
    before = wait_workers(s, 2)
    r = requests.get(s.url("/crash.php?why=test"), timeout=5)
    assert r.status_code == 502
    assert "still alive" not in r.text
    assert s.wait_log(r"killed by signal 9"), s.log()
    (line,) = log_lines(s, r"killed by signal 9")
    m = re.search(r"worker \d+ \(pid (\d+)\)", line)
    assert m, line
    dead = int(m.group(1))
    assert dead in before
    # The log says which request killed it, so the operator can find the bug.
    assert "GET /crash.php?why=test" in line, line
    after = wait_workers(s, 2, exclude=[dead])
    assert set(before) - {dead} <= set(after)
    r = requests.get(s.url("/pid.php"), timeout=5)
    assert r.status_code == 200 and int(r.text) in after


def test_crashes_do_not_fail_concurrent_requests(start_server):
    s = start_server(DOCROOT, workers=2)
    wait_workers(s, 2)
    results, errors = [], []
    lock = threading.Lock()
    todo = list(range(50))

    def client():
        with requests.Session() as sess:
            while True:
                with lock:
                    if not todo:
                        return
                    todo.pop()
                try:
                    r = sess.get(s.url("/sleep.php?ms=20"), timeout=5)
                    with lock:
                        results.append((r.status_code, r.text))
                except Exception as e:  # noqa: BLE001 - any failure counts
                    with lock:
                        errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(5)]
    for t in threads:
        t.start()
    crash_status = []
    for _ in range(3):
        time.sleep(0.1)
        crash_status.append(requests.get(s.url("/crash.php"), timeout=5).status_code)
    for t in threads:
        t.join(30)
    assert crash_status == [502, 502, 502]
    assert errors == []
    assert len(results) == 50
    assert all(st == 200 and body.startswith("slept 20 ") for st, body in results), results
    assert len(log_lines(s, r"killed by signal 9")) == 3, s.log()
    wait_workers(s, 2)


def test_idle_worker_killed_from_outside_is_replaced(start_server):
    s = start_server(DOCROOT, workers=2)
    before = wait_workers(s, 2)
    os.kill(before[0], signal.SIGKILL)
    after = wait_workers(s, 2, exclude=[before[0]])
    assert before[1] in after
    assert s.wait_log(r"pid %d\) was killed by signal 9.*idle" % before[0]), s.log()
    for _ in range(4):
        r = requests.get(s.url("/pid.php"), timeout=5)
        assert r.status_code == 200 and int(r.text) in after


# ---- 2. slow clients ---------------------------------------------------------------------


def timed_get(s, path="/pid.php"):
    t0 = time.time()
    r = requests.get(s.url(path), timeout=3)
    return r, time.time() - t0


def test_slow_request_body_does_not_hold_a_worker(start_server):
    s = start_server(DOCROOT, workers=1)
    body = os.urandom(100 * 1024)
    half = len(body) // 2
    a = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    try:
        a.sendall(b"POST /post.php HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                  b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:half])
        t_start = time.time()
        # While the upload stalls, the only PHP worker answers others at once.
        for at in (0.2, 1.0, 1.8):
            time.sleep(max(0, t_start + at - time.time()))
            r, took = timed_get(s)
            assert r.status_code == 200 and took < 0.5, (r.status_code, took)
        time.sleep(max(0, t_start + 2.0 - time.time()))
        a.sendall(body[half:])
        st, _, got = read_response(a)
        assert st == 200
        assert got.decode() == "%d %s" % (len(body), hashlib.md5(body).hexdigest())
    finally:
        a.close()


def test_slow_reader_of_a_large_response_does_not_hold_a_worker(start_server):
    s = start_server(DOCROOT, workers=1)
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.settimeout(5)
    c.connect(("127.0.0.1", s.port))
    try:
        c.sendall(b"GET /big.php HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        t_start = time.time()
        for at in (0.3, 1.0, 1.8):
            time.sleep(max(0, t_start + at - time.time()))
            r, took = timed_get(s)
            assert r.status_code == 200 and took < 0.5, (r.status_code, took)
        time.sleep(max(0, t_start + 2.0 - time.time()))
        st, _, got = read_response(c, timeout=10)
        assert st == 200
        assert got == b"0123456789abcdef" * 4096 * 80
    finally:
        c.close()


# ---- 3. the queue ---------------------------------------------------------------------------


def test_queue_bound_gives_503_with_retry_after(start_server):
    s = start_server(DOCROOT, "--queue-size", "2", workers=1)
    socks = []
    try:
        for _ in range(3):  # 1 running + 2 queued
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            c.sendall(b"GET /sleep.php?ms=700 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            socks.append(c)
            time.sleep(0.05)
        time.sleep(0.1)
        for _ in range(2):
            t0 = time.time()
            st, h, _ = http_get(s.port, "/sleep.php?ms=700")
            assert st == 503 and time.time() - t0 < 0.5
            assert h.get("retry-after", "").isdigit(), h
        for c in socks:
            st, _, body = read_response(c, timeout=5)
            assert st == 200 and body.startswith(b"slept 700 ")
    finally:
        for c in socks:
            c.close()
    # Both 503s logged as one line: once a second at most, so an overload
    # does not also flood the log.
    lines = log_lines(s, r"queue")
    assert len(lines) == 1 and all("/sleep.php" in l for l in lines), s.log()
    # Once the queue has room again, requests are served.
    assert requests.get(s.url("/pid.php"), timeout=5).status_code == 200


def test_abandoned_queued_request_frees_its_slot_and_never_runs(start_server):
    s = start_server(DOCROOT, "--queue-size", "1", workers=1)
    busy = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    busy.sendall(b"GET /sleep.php?ms=700 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    time.sleep(0.1)
    gone = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    gone.sendall(b"GET /mark.php?name=abandoned HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    time.sleep(0.1)
    gone.close()  # the client gives up while its request waits in the queue
    time.sleep(0.1)
    # Its place in the queue is free again: this one waits instead of a 503.
    st, _, body = http_get(s.port, "/mark.php?name=kept")
    assert st == 200 and body.startswith(b"ran kept ")
    st, _, body = read_response(busy)
    busy.close()
    assert st == 200
    r = requests.get(s.url("/apcu.php?op=fetch&key=ran-abandoned"), timeout=5).json()
    assert r["found"] is False, "the abandoned request ran anyway"
    assert not log_lines(s, r"queue is full"), s.log()


# ---- 4. request timeout --------------------------------------------------------------------


def test_request_timeout_gives_504_and_replaces_the_worker(start_server):
    s = start_server(DOCROOT, "--request-timeout", "1", workers=1)
    (before,) = wait_workers(s, 1)
    t0 = time.time()
    r = requests.get(s.url("/sleep.php?ms=5000"), timeout=5)
    took = time.time() - t0
    assert r.status_code == 504
    assert 0.9 <= took < 1.5, took
    assert s.wait_log(r"request-timeout"), s.log()
    (line,) = log_lines(s, r"request-timeout")
    assert "GET /sleep.php?ms=5000" in line and str(before) in line, line
    (after,) = wait_workers(s, 1, exclude=[before])
    r = requests.get(s.url("/pid.php"), timeout=5)
    assert r.status_code == 200 and int(r.text) == after


def test_request_timeout_covers_work_after_fastcgi_finish_request(start_server):
    """The response is out, but the script goes on: --request-timeout still
    bounds it, so the worker comes back instead of staying stuck."""
    s = start_server(DOCROOT, "--request-timeout", "1", workers=1)
    (before,) = wait_workers(s, 1)
    t0 = time.time()
    r = requests.get(s.url("/finish_sleep.php?ms=5000"), timeout=5)
    assert r.status_code == 200 and r.text == "done %d" % before
    assert time.time() - t0 < 0.5
    r = requests.get(s.url("/pid.php"), timeout=5)
    took = time.time() - t0
    assert r.status_code == 200
    assert took < 1.8, "the next request waited %.1fs for the stuck worker" % took
    assert int(r.text) != before
    assert log_lines(s, r"request-timeout"), s.log()


# ---- 5. reload ------------------------------------------------------------------------------


def test_reload_under_load_fails_no_request(start_server):
    s = start_server(DOCROOT, workers=2)
    gen0 = set(wait_workers(s, 2))
    stop = threading.Event()
    statuses, errors, served_by = [], [], []
    lock = threading.Lock()

    def client():
        with requests.Session() as sess:
            while not stop.is_set():
                try:
                    r = sess.get(s.url("/sleep.php?ms=50"), timeout=5)
                    with lock:
                        statuses.append(r.status_code)
                        served_by.append((time.time(), r.text))
                except Exception as e:  # noqa: BLE001
                    with lock:
                        errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.8)
        s.send_signal(signal.SIGHUP)
        gen1 = set(wait_workers(s, 2, exclude=gen0))
        time.sleep(0.8)
        s.send_signal(signal.SIGUSR2)
        gen2 = set(wait_workers(s, 2, exclude=gen0 | gen1))
        t_reloaded = time.time()
        time.sleep(0.8)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert errors == []
    assert len(statuses) >= 50 and set(statuses) == {200}, (len(statuses), set(statuses))
    assert len(log_lines(s, r"reloading")) == 2, s.log()
    # After the last reload, requests are served by the new workers only.
    late = [int(body.split()[2]) for t, body in served_by if t > t_reloaded + 0.2]
    assert late and set(late) <= gen2, (set(late), gen2)


def test_reload_lets_running_requests_finish(start_server):
    s = start_server(DOCROOT, workers=2)
    gen0 = set(wait_workers(s, 2))
    res = {}

    def slow():
        res["r"] = requests.get(s.url("/sleep.php?ms=1000"), timeout=5)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.2)
    s.send_signal(signal.SIGHUP)
    # New workers take requests at once, while the old one finishes.
    assert s.wait_log(r"reloading", 2)
    t0 = time.time()
    r = requests.get(s.url("/pid.php"), timeout=5)
    assert r.status_code == 200 and int(r.text) not in gen0 and time.time() - t0 < 0.5
    t.join(5)
    assert res["r"].status_code == 200 and res["r"].text.startswith("slept 1000 ")
    old = int(res["r"].text.split()[2])
    assert old in gen0
    wait_workers(s, 2, exclude=gen0)


def write_php(path, text, mtime=None):
    with open(path, "w") as f:
        f.write(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_reload_serves_new_code(start_server, tmp_path):
    """A deploy replaces a file and sends SIGHUP: the next request runs the new
    code, with the default OPcache settings. The new file keeps the old
    mtime, as deploys that preserve timestamps do (rsync -t, tar, images)."""
    v = str(tmp_path / "v.php")
    mtime = time.time() - 60
    write_php(v, '<?php echo "v1";', mtime)
    s = start_server(str(tmp_path), workers=2)
    gen0 = wait_workers(s, 2)
    assert requests.get(s.url("/v.php"), timeout=5).text == "v1"
    write_php(v, '<?php echo "v2";', mtime)
    s.send_signal(signal.SIGHUP)
    wait_workers(s, 2, exclude=gen0)
    assert requests.get(s.url("/v.php"), timeout=5).text == "v2"


def test_reload_serves_new_code_with_revalidate_freq_0(start_server, tmp_path):
    v = str(tmp_path / "v.php")
    write_php(v, '<?php echo "v1";', time.time() - 60)
    s = start_server(str(tmp_path), "-d", "opcache.revalidate_freq=0", workers=2)
    gen0 = wait_workers(s, 2)
    assert requests.get(s.url("/v.php"), timeout=5).text == "v1"
    write_php(v, '<?php echo "v2";')
    s.send_signal(signal.SIGHUP)
    wait_workers(s, 2, exclude=gen0)
    assert requests.get(s.url("/v.php"), timeout=5).text == "v2"


# ---- 6. draining ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_drains_in_flight_requests(start_server, sig):
    s = start_server(DOCROOT, workers=2)
    res = {}

    def slow():
        try:
            res["r"] = requests.get(s.url("/sleep.php?ms=1000"), timeout=5)
        except Exception as e:  # noqa: BLE001
            res["e"] = repr(e)

    # An idle keep-alive connection does not hold the shutdown up.
    idle = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    idle.sendall(b"GET /pid.php HTTP/1.1\r\nHost: t\r\n\r\n")
    assert read_one_keepalive(idle)[0] == 200
    t = threading.Thread(target=slow)
    t0 = time.time()
    t.start()
    time.sleep(0.2)
    s.send_signal(sig)
    t_sig = time.time()

    def refused():
        try:
            socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
            return False
        except (ConnectionRefusedError, ConnectionResetError):
            # Reset: it sat in the backlog of the socket being closed.
            return True

    assert wait_for(refused, 0.5, 0.01), "new connections still accepted after the signal"
    assert time.time() - t0 < 1.0  # refused while the slow request still runs
    t.join(5)
    assert "e" not in res, res
    r = res["r"]
    assert r.status_code == 200 and r.text.startswith("slept 1000 ")
    assert r.headers.get("Connection") == "close"
    assert s.proc.wait(timeout=5) == 0
    assert time.time() - t_sig < 3
    idle.settimeout(1)
    assert idle.recv(100) == b""  # closed by the server, without a response
    idle.close()
    assert re.search(r"draining", s.log()), s.log()
    assert re.search(r"\bstopped\b", s.log()), s.log()


def test_drain_finishes_queued_requests_too(start_server):
    s = start_server(DOCROOT, workers=1)
    socks = []
    for _ in range(2):  # one runs, one waits in the queue
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.sendall(b"GET /sleep.php?ms=500 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        socks.append(c)
        time.sleep(0.05)
    s.send_signal(signal.SIGTERM)
    for c in socks:
        st, _, body = read_response(c)
        c.close()
        assert st == 200 and body.startswith(b"slept 500 ")
    assert s.proc.wait(timeout=5) == 0


def test_second_sigint_stops_at_once(start_server):
    s = start_server(DOCROOT, workers=1)
    res = {}

    def slow():
        try:
            res["r"] = requests.get(s.url("/sleep.php?ms=5000"), timeout=8)
        except Exception as e:  # noqa: BLE001
            res["e"] = repr(e)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.2)
    s.send_signal(signal.SIGINT)
    assert s.wait_log(r"draining", 2)
    time.sleep(0.1)
    assert s.proc.poll() is None  # still draining
    s.send_signal(signal.SIGINT)
    t_sig = time.time()
    s.proc.wait(timeout=3)
    assert time.time() - t_sig < 1.0
    t.join(2)
    assert "r" not in res or res["r"].status_code >= 500


def test_drain_timeout_bounds_shutdown(start_server):
    s = start_server(DOCROOT, "--drain-timeout", "1", workers=1)
    (worker,) = wait_workers(s, 1)
    res = {}

    def slow():
        try:
            res["r"] = requests.get(s.url("/sleep.php?ms=5000"), timeout=8)
        except Exception as e:  # noqa: BLE001
            res["e"] = repr(e)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.2)
    s.send_signal(signal.SIGTERM)
    t_sig = time.time()
    assert s.proc.wait(timeout=5) == 0
    assert time.time() - t_sig < 2.0
    t.join(2)
    assert not t.is_alive()
    # Cut short: the client sees the connection close, or a 5xx at best.
    assert "r" not in res or res["r"].status_code >= 500, res["r"].text
    assert re.search(r"drain timeout", s.log()), s.log()

    # The PHP worker does not go on running on its own.
    def gone():
        try:
            with open("/proc/%d/stat" % worker) as f:
                return f.read().split(") ")[1].startswith("Z")
        except FileNotFoundError:
            return True

    assert wait_for(gone, 1.0)


# ---- 7. shared memory across workers ---------------------------------------------------------


def run_concurrently(s, first, second, gap=0.15):
    """Starts `first` (which must sleep), then `second` while it runs, so that
    the two run on different workers. Returns both JSON answers."""
    out = {}

    def go():
        out["first"] = requests.get(s.url(first), timeout=5)

    t = threading.Thread(target=go)
    t.start()
    time.sleep(gap)
    r2 = requests.get(s.url(second), timeout=5)
    t.join(5)
    r1 = out["first"]
    assert r1.status_code == 200 and r2.status_code == 200, (r1.text, r2.text)
    return r1.json(), r2.json()


def test_apcu_is_shared_between_workers(start_server):
    s = start_server(DOCROOT, workers=2)
    wait_workers(s, 2)
    for i in range(3):
        key, value = "k%d" % i, "value-%d-%f" % (i, time.time())
        a, b = run_concurrently(s, "/apcu.php?op=store&key=%s&value=%s&ms=400" % (key, value),
                                "/apcu.php?op=fetch&key=%s" % key)
        assert a["enabled"] and a["stored"] is True
        assert a["pid"] != b["pid"], "both requests ran on one worker"
        assert b["found"] is True and b["value"] == value


def test_opcache_is_on_and_shared_between_workers(start_server):
    s = start_server(DOCROOT, workers=2)
    wait_workers(s, 2)
    # Worker A compiles marker.php and then stays busy; worker B reports.
    out = {}

    def first():
        r = requests.get(s.url("/marker.php"), timeout=5)
        out["marker_pid"] = int(r.text.split()[1])
        out["a"] = requests.get(s.url("/opcache.php?ms=400"), timeout=5).json()

    t = threading.Thread(target=first)
    t.start()
    time.sleep(0.2)
    b = requests.get(s.url("/opcache.php"), timeout=5).json()
    t.join(5)
    a = out["a"]
    assert a["enabled"] and b["enabled"]
    assert a["pid"] == out["marker_pid"] != b["pid"]
    marker = os.path.join(DOCROOT, "marker.php")
    assert marker in b["scripts"], b["scripts"]
    assert a["start_time"] == b["start_time"]


# ---- 8. configuration ------------------------------------------------------------------------


def test_env_vars_listen_and_workers(tmp_path):
    port = free_port()
    p = Proc(["serve", DOCROOT], {"TUSK_LISTEN": "127.0.0.1:%d" % port, "TUSK_WORKERS": "3"})
    try:
        assert p.wait_serving() == port
        assert wait_for(lambda: len(p.worker_pids()) == 3, 5), p.worker_pids()
        r = requests.get("http://127.0.0.1:%d/pid.php" % port, timeout=5)
        assert r.status_code == 200 and int(r.text) in p.worker_pids()
    finally:
        assert p.stop() == 0


def test_flags_win_over_env_vars():
    p = Proc(["serve", DOCROOT, "--listen", "127.0.0.1:0", "--workers", "1"],
             {"TUSK_LISTEN": "nonsense", "TUSK_WORKERS": "3"})
    try:
        port = p.wait_serving()
        assert port != 0
        time.sleep(0.3)
        assert len(p.worker_pids()) == 1
        assert requests.get("http://127.0.0.1:%d/pid.php" % port, timeout=5).status_code == 200
    finally:
        assert p.stop() == 0


@pytest.mark.parametrize("args,needle", [
    (["--listen", "nonsense"], "--listen"),
    (["--max-body-size", "12x"], "--max-body-size"),
    (["--flag"], "--flag"),
    (["--workers", "-1"], "--workers"),
    (["--request-timeout", "soon"], "--request-timeout"),
], ids=["listen", "max-body-size", "unknown-flag", "workers", "request-timeout"])
def test_bad_option_is_one_clear_line(args, needle):
    rc, err = run_fail(["serve", DOCROOT] + args)
    assert rc != 0
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert needle in err
    assert "serving" not in err


def test_bad_env_var_names_the_variable():
    rc, err = run_fail(["serve", DOCROOT], {"TUSK_MAX_BODY_SIZE": "12x"})
    assert rc != 0 and err.count("\n") == 1
    assert "TUSK_MAX_BODY_SIZE" in err and "12x" in err


def test_missing_docroot_is_one_clear_line():
    missing = "/nonexistent/tusk-docroot"
    rc, err = run_fail(["serve", missing, "--listen", "127.0.0.1:0"])
    assert rc != 0
    assert err.count("\n") == 1 and missing in err, err


def test_port_in_use_is_a_clear_message():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc, err = run_fail(["serve", DOCROOT, "--listen", "127.0.0.1:%d" % port, "--workers", "1"])
    assert rc != 0
    assert err.count("\n") == 1, err
    assert str(port) in err and "in use" in err
    assert "serving" not in err


# ---- 9. no leaked descriptors -----------------------------------------------------------------


def fds_of_all_workers(s, n):
    """Asks n concurrent fds.php requests so that every worker answers."""
    out = [None] * n

    def go(i):
        out[i] = requests.get(s.url("/fds.php?ms=300"), timeout=5).json()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    return out


def test_workers_do_not_inherit_client_or_listening_sockets(start_server):
    s = start_server(DOCROOT, workers=2)
    gen0 = wait_workers(s, 2)
    held = []
    try:
        for _ in range(5):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            c.sendall(b"GET /pid.php HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_one_keepalive(c)[0] == 200
            held.append(c)
        # Workers forked while these connections are open: after a reload...
        s.send_signal(signal.SIGHUP)
        gen1 = wait_workers(s, 2, exclude=gen0)
        # ... and after a crash.
        assert requests.get(s.url("/crash.php"), timeout=5).status_code == 502
        assert wait_for(lambda: len(s.worker_pids()) == 2 and set(s.worker_pids()) != set(gen1)), s.log()
        reports = fds_of_all_workers(s, 2)
        assert {r["pid"] for r in reports} == set(s.worker_pids())
        for r in reports:
            targets = list(r["fds"].values())
            assert r["tcp_fds"] == [], r
            # Its own channel only: one socket per direction.
            assert sum(t.startswith("socket:") for t in targets) <= 2, r
        # The held connections still work.
        for c in held:
            c.sendall(b"GET /pid.php HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_one_keepalive(c)[0] == 200
    finally:
        for c in held:
            c.close()


def test_direct_mode_reload_under_load_fails_no_request(start_server):
    """Direct mode: workers drain on reload. PHP's per-request signal
    handling once turned a worker's SIGTERM into death after its second
    request, dropping connections."""
    s = start_server(DOCROOT, "--mode", "direct", workers=2)
    stop = threading.Event()
    ok, errors = [], []

    def load():
        while not stop.is_set():
            try:
                r = requests.get(s.url("/sleep.php?ms=10"), timeout=5)
                ok.append(r.status_code)
            except requests.exceptions.RequestException as e:
                errors.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(4):
            time.sleep(0.4)
            s.send_signal(signal.SIGUSR2)
        time.sleep(0.4)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == [], errors[:3]
    assert ok and set(ok) == {200}
    assert "killed by signal 15" not in s.log()


def test_pooled_workers_survive_a_group_sigterm(start_server):
    """systemd and `kill 0` signal the whole process group: the workers
    must leave shutting down to the master, also after serving requests."""
    s = start_server(DOCROOT, workers=2)
    for _ in range(6):
        assert requests.get(s.url("/pid.php"), timeout=5).status_code == 200
    for pid in s.worker_pids() + [s.proc.pid]:
        os.kill(pid, signal.SIGTERM)
    assert s.proc.wait(timeout=10) == 0
    assert "killed by signal" not in s.log(), s.log()
