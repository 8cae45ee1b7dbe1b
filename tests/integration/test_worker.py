"""Worker mode (--worker SCRIPT), FrankenPHP-compatible.

Each PHP worker process runs the worker script once; the script boots and
loops on frankenphp_handle_request(). These tests check what a user of that
API relies on:
  - request-scoped state never crosses from request N to request N+1 of the
    same process (headers, cookies, superglobals, session, uploads, output
    buffers, status code, php://input, ini limits), with --workers 1 so that
    both requests hit the same process;
  - what the boot built stays (the point of worker mode);
  - recycling: --max-requests, --max-worker-memory, a handler that throws or
    exits, a script that cannot boot (clear log, no spinning);
  - the API: headers_send(103) Early Hints, frankenphp_finish_request(),
    frankenphp_request_headers(), the Tusk\\ aliases;
  - reload by signal under load and by --watch;
  - real applications: a Symfony 5.4 HttpKernel app and a Slim 3 app
    (Debian packages) under 2000 concurrent requests.
Every test runs in both --mode pooled and --mode direct.
"""
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import parse_responses, raw_request

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER_DIR = os.path.join(HERE, "php", "worker")
APP = os.path.join(WORKER_DIR, "app")
APP_SCRIPT = os.path.join(APP, "worker.php")
APPS = os.path.join(HERE, "apps")

T = 10  # seconds: timeout of every HTTP request

MODES = ["pooled", "direct"]


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def serve(start_server, mode, *args, root=APP, script=APP_SCRIPT, workers=1, env=None):
    return start_server(root, "--worker", script, "--mode", mode, *args, workers=workers, env=env)


def get(s, path, **kw):
    return requests.get(s.url(path), timeout=T, **kw)


def info(s, path="/info", method="GET", http=None, **kw):
    """The JSON of a 200 response (http: a requests.Session for keep-alive)."""
    r = (http or requests).request(method, s.url(path), timeout=T, **kw)
    assert r.status_code == 200, (r.status_code, r.text, s.log())
    return r.json()


def empty(v):
    """PHP's empty array comes as [] in JSON."""
    return v in ([], {})


# ---- what boot builds stays; the API is there ---------------------------------------------------


def test_boot_runs_once_and_worker_flags(start_server, mode):
    s = serve(start_server, mode)
    seen = [info(s) for _ in range(4)]
    assert [x["handled"] for x in seen] == [1, 2, 3, 4], seen
    assert len({x["pid"] for x in seen}) == 1
    assert len({x["boot_time"] for x in seen}) == 1
    assert seen[0]["boot_pid"] == seen[0]["pid"]
    for x in seen:
        assert x["frankenphp_worker"] == "1"
        assert x["tusk_worker"] == "1"
    # Frameworks (Symfony's runtime) test the flag while booting.
    assert seen[0]["boot_worker_flag"] == {"frankenphp": "1", "tusk": "1"}


def test_api_functions_exist(start_server, mode):
    s = serve(start_server, mode)
    assert info(s, "/functions") == {
        "frankenphp_handle_request": True, "frankenphp_finish_request": True,
        "frankenphp_request_headers": True, "headers_send": True,
        "Tusk\\handle_request": True, "Tusk\\finish_request": True,
        "Tusk\\request_headers": True, "Tusk\\headers_send": True,
    }


def test_static_files_served_and_everything_else_goes_to_the_worker(start_server, mode):
    s = serve(start_server, mode)
    assert info(s)["handled"] == 1
    r = get(s, "/static.txt")
    assert r.status_code == 200
    assert r.text == "static file served by Tusk\n"
    assert r.headers["content-type"].startswith("text/plain")
    # Any other path is the worker's (front controller) ...
    d = info(s, "/some/route/here?x=1")
    assert d["route"] == "default" and d["uri"] == "/some/route/here?x=1"
    # ... and PHP files of the document root are never sent as source.
    for path in ("/worker.php", "/other.php"):
        r = get(s, path)
        assert "<?php" not in r.text and "frankenphp_handle_request" not in r.text, (path, r.text)
    # The static file does not reach PHP.
    handled = info(s)["handled"]
    assert handled >= 3
    get(s, "/static.txt")
    assert info(s)["handled"] == handled + 1


# ---- no state bleeds from request N into request N+1 ------------------------------------------


def test_headers_and_cookies_do_not_leak(start_server, mode):
    s = serve(start_server, mode)
    r = get(s, "/set-header")
    assert r.status_code == 200
    assert r.headers["x-leak"] == "from-request-n"
    assert "leaky=n" in r.headers["set-cookie"]
    assert r.headers["cache-control"] == "private, max-age=99"
    r = get(s, "/info")
    assert r.status_code == 200
    assert "x-leak" not in r.headers, r.headers
    assert "set-cookie" not in r.headers, r.headers
    assert r.headers.get("cache-control") != "private, max-age=99"
    d = r.json()
    assert not any(h.lower().startswith(("x-leak", "set-cookie")) for h in d["headers_list"]), d["headers_list"]
    assert d["handled"] == 2


def test_superglobals_and_input_do_not_leak(start_server, mode):
    s = serve(start_server, mode)
    d = info(s, "/info?g=1&shared=get", method="POST", data={"p": "1", "shared": "post"},
             cookies={"c": "1"}, headers={"X-Custom": "abc"})
    assert d["get"] == {"g": "1", "shared": "get"}
    assert d["post"] == {"p": "1", "shared": "post"}
    assert d["cookie"] == {"c": "1"}
    assert d["request"]["g"] == "1" and d["request"]["p"] == "1"
    assert d["http_x_custom"] == "abc"
    assert d["input"] == "p=1&shared=post"
    # A handler that writes into the superglobals.
    d = info(s, "/pollute")
    assert d["polluted_server"] == "yes" and d["get"] == {"polluted": "1"}
    d = info(s, "/info")
    assert d["handled"] == 3
    assert d["method"] == "GET" and d["query_string"] == ""
    for k in ("get", "post", "cookie", "request", "files"):
        assert empty(d[k]), (k, d[k])
    assert d["input"] == ""
    assert d["http_x_custom"] is None
    assert d["polluted_server"] is None
    # php://input is this request's body, nothing of a longer earlier one.
    d = info(s, "/info", method="POST", data=b"short", headers={"Content-Type": "text/plain"})
    assert d["input"] == "short"
    assert empty(d["post"])


def test_session_does_not_leak(start_server, mode, tmp_path):
    s = serve(start_server, mode, "-d", "session.save_path=%s" % tmp_path)
    r = get(s, "/session-start?v=secret-of-n")
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["session"] == {"secret": "secret-of-n"}
    assert r.cookies.get("PHPSESSID") == first["id"]
    # The next request, without a cookie: no session is open, none is known.
    d = info(s)
    assert d["session_status"] == 1, d  # PHP_SESSION_NONE
    assert d["session_id"] == ""
    assert d["session"] is None
    r = get(s, "/session-peek")
    other = r.json()
    assert other["id"] != first["id"]
    assert empty(other["session"]), other
    assert r.cookies.get("PHPSESSID") == other["id"]
    assert other["pid"] == first["pid"]
    # The data of request N was saved when it ended, as in classic PHP.
    back = info(s, "/session-peek", cookies={"PHPSESSID": first["id"]})
    assert back["id"] == first["id"]
    assert back["session"] == {"secret": "secret-of-n"}


def test_uploaded_files_do_not_leak(start_server, mode):
    s = serve(start_server, mode)
    data = os.urandom(70000)
    d = info(s, "/upload", method="POST", files={"file": ("n.bin", data)})
    f = d["files"]["file"]
    assert f["name"] == "n.bin" and f["size"] == len(data)
    assert f["exists"] and f["is_uploaded"]
    assert f["md5"] == hashlib.md5(data).hexdigest()
    # The temp file of request N is gone and is no upload of request N+1.
    e = info(s, "/exists?path=" + requests.utils.quote(f["tmp_name"]))
    assert e == {"exists": False, "is_uploaded": False, "pid": d["pid"]}
    d2 = info(s)
    assert empty(d2["files"])
    assert d2["pid"] == d["pid"]


def test_output_buffers_do_not_leak(start_server, mode):
    s = serve(start_server, mode)
    base = info(s)["ob_level"]
    r = get(s, "/ob-leak")
    assert r.status_code == 200
    # Buffers left open are flushed at the end of the request, as in classic PHP.
    assert r.text == "buffered-one;buffered-two;"
    r = get(s, "/info")
    assert r.status_code == 200
    assert "buffered" not in r.text
    d = r.json()
    assert d["ob_level"] == base
    assert d["handled"] == 3


def test_status_code_does_not_leak(start_server, mode):
    s = serve(start_server, mode)
    r = get(s, "/status404")
    assert r.status_code == 404 and r.text == "not here"
    r = get(s, "/info")
    assert r.status_code == 200
    assert r.json()["response_code"] == 200


def test_ini_limits_reset_per_request(start_server, mode):
    s = serve(start_server, mode)
    base = info(s)
    assert base["timezone"] == "Pacific/Auckland"  # set while booting: kept
    assert info(s, "/ini-change") == {"memory_limit": "345M", "max_execution_time": "7", "timezone": "America/Lima"}
    after = info(s)
    # What a request changes is undone when it ends, as in classic PHP.
    assert after["memory_limit"] == base["memory_limit"] != "345M"
    assert after["max_execution_time"] == base["max_execution_time"] != "7"
    assert after["timezone"] == "Pacific/Auckland"
    assert info(s)["timezone"] == "Pacific/Auckland"


def test_time_limit_is_rearmed_per_request(start_server, mode):
    # max_execution_time is per request: five requests of 0.4 s of CPU each
    # pass under a 1 s limit (together they would not), and one of 3 s is
    # stopped with the usual fatal error (504) while the worker goes on.
    s = serve(start_server, mode, "-d", "max_execution_time=1")
    http = client_for(mode)
    for _ in range(5):
        r = (http or requests).get(s.url("/spin?ms=400"), timeout=T)
        assert r.status_code == 200, (r.status_code, s.log()[-2000:])
    r = (http or requests).get(s.url("/spin?ms=3000"), timeout=T)
    assert r.status_code == 504, r.status_code
    assert "Maximum execution time of 1 second exceeded" in s.log()
    assert info(s, http=http)["frankenphp_worker"] == "1"


# ---- recycling --------------------------------------------------------------------------------


def client_for(mode):
    """Pooled: one keep-alive connection, the next request follows each
    response at once (a request must never reach a process that is
    recycling). Direct: a worker's own connections end with it, which
    test_recycling_closes_connections_cleanly checks; here each request
    gets a new connection."""
    return requests.Session() if mode == "pooled" else None


def test_max_requests_replaces_the_process(start_server, mode):
    s = serve(start_server, mode, "--max-requests", "3")
    http = client_for(mode)
    seen = [info(s, http=http) for _ in range(25)]
    pids = [x["pid"] for x in seen]
    assert [x["handled"] for x in seen] == [1, 2, 3] * 8 + [1], seen
    for g in range(8):
        assert len(set(pids[3 * g:3 * g + 3])) == 1, pids
    assert len(set(pids)) == 9, pids


def test_max_worker_memory_replaces_the_process(start_server, mode):
    limit = 16 * 1024 * 1024
    s = serve(start_server, mode, "--max-worker-memory", "16m")
    http = client_for(mode)
    seen = []
    generations = [[]]
    for _ in range(60):
        d = info(s, "/leak", http=http)
        seen.append(d)
        if generations[-1] and d["pid"] != generations[-1][-1]["pid"]:
            generations.append([])
        generations[-1].append(d)
        if len(generations) == 5:
            break
    assert len(generations) == 5, "the process was not replaced 4 times: %s\n%s" % (seen, s.log())
    for old in generations[:4]:
        # Replaced once past the limit (2 MB more per request), not before;
        # the server measures after the response, a bit above what the
        # handler saw.
        assert len(old) >= 5, seen
        assert old[-1]["memory"] > limit - 3 * 1024 * 1024, seen
        assert old[-2]["memory"] < limit, seen
        assert [x["chunks"] for x in old] == list(range(1, len(old) + 1))  # a fresh process each time
    assert re.search(r"(?i)memory", s.log()), s.log()


def test_uncaught_exception_gives_500_and_restarts(start_server, mode):
    s = serve(start_server, mode)
    http = client_for(mode)
    for _ in range(6):
        before = info(s, http=http)
        r = (http or requests).get(s.url("/throw"), timeout=T)
        assert r.status_code == 500
        # The next request works at once, on a freshly booted script (a
        # script that booted fine is no boot failure: no backoff).
        t0 = time.time()
        after = info(s, http=http)
        assert time.time() - t0 < 1.0, s.log()[-2000:]
        assert after["handled"] == 1
        assert after["boot_time"] != before["boot_time"]
        assert info(s, http=http)["handled"] == 2
    assert "boom from the handler" in s.log()


def test_exit_in_handler(start_server, mode):
    s = serve(start_server, mode)
    http = client_for(mode)
    info(s, http=http)
    # exit()/die() ends the request as in classic PHP: what was sent stays.
    r = (http or requests).get(s.url("/die"), timeout=T)
    assert (r.status_code, r.text) == (200, "bye")
    r = (http or requests).get(s.url("/redirect-exit"), timeout=T, allow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/elsewhere"
    assert info(s, http=http)["frankenphp_worker"] == "1"


class KeepAlive:
    """One client connection reused while the server keeps it open. A
    response without 'Connection: close' promises that the connection
    takes the next request."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.connections = 0

    def request(self, path):
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=T)
            self.connections += 1
            fresh = True
        else:
            fresh = False
        buf = b""
        try:
            self.sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            while not _complete(buf):
                b = self.sock.recv(65536)
                if not b:
                    break
                buf += b
        except OSError as e:
            buf = buf or repr(e).encode()
        if not _complete(buf):
            raise AssertionError("%s connection ended without a response to %s: %r" % (
                "a fresh" if fresh else "a kept-alive", path, buf[:200]))
        status, headers, body = parse_responses(buf)[0]
        if headers.get("connection", "").lower() == "close":
            self.sock.close()
            self.sock = None
        return status, headers, body

    def close(self):
        if self.sock:
            self.sock.close()


def _complete(buf):
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    h = head.lower()
    if b"\r\ntransfer-encoding: chunked" in h:
        return rest.endswith(b"0\r\n\r\n")
    for line in h.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return False


RECYCLE_TRIGGERS = {
    "max_requests": (("--max-requests", "3"), ["/info"] * 4),
    "memory": (("--max-worker-memory", "8m"), ["/leak"] * 8),
    "exception": ((), ["/info", "/throw", "/info"]),
}


@pytest.mark.parametrize("trigger", sorted(RECYCLE_TRIGGERS))
def test_recycling_closes_connections_cleanly(start_server, mode, trigger):
    """When a worker is replaced, a keep-alive client either keeps its
    connection (pooled: the master owns it) or was told 'Connection:
    close' on the last response (direct: the worker's connections end with
    it). A connection closed silently fails the client's next request."""
    args, paths = RECYCLE_TRIGGERS[trigger]
    s = serve(start_server, mode, *args)
    ka = KeepAlive(s.port)
    pids = []
    try:
        for path in paths:
            status, headers, body = ka.request(path)
            if path == "/throw":
                assert status == 500
            else:
                assert status == 200, body
                pids.append(json.loads(body)["pid"])
            time.sleep(0.05)  # the replaced worker is gone by the next request
    finally:
        ka.close()
    assert len(set(pids)) >= 2, (pids, s.log()[-2000:])  # it was recycled


BOOT_ERRORS = {
    "bad_syntax": "syntax error",
    "bad_boot": "database unreachable during worker boot",
}


@pytest.mark.parametrize("case", sorted(BOOT_ERRORS))
def test_boot_failure_is_logged_and_does_not_spin(start_server, mode, case, tmp_path):
    root = str(tmp_path / "root")
    shutil.copytree(os.path.join(WORKER_DIR, case), root)
    script = os.path.join(root, "worker.php")
    s = serve(start_server, mode, "--request-timeout", "2", root=root, script=script, workers=1)
    msg = BOOT_ERRORS[case]
    assert s.wait_log(re.escape(msg), timeout=5), s.log()
    t0 = time.time()
    n0 = s.log().count(msg)
    pids = set()
    # A request gets an error (or, while no worker is up, waits) - never a 200.
    try:
        r = requests.get(s.url("/"), timeout=2.5)
        assert r.status_code in (500, 502, 503, 504), (r.status_code, r.text)
    except requests.exceptions.RequestException:
        pass
    while time.time() - t0 < 3:
        pids.update(s.worker_pids())
        time.sleep(0.02)
    n1 = s.log().count(msg)
    log = s.log()
    assert n1 - n0 <= 5, "the failing worker script is restarted in a tight loop:\n" + log[-3000:]
    assert len(pids) <= 6, pids
    assert s.proc.poll() is None
    # A clear line: the worker script could not boot.
    assert re.search(r"(?i)boot", log) and "worker.php" in log, log[-3000:]
    if (mode, case) != ("pooled", "bad_syntax"):
        # SIGTERM stops a server whose workers cannot boot, at once.
        s.send_signal(signal.SIGTERM)
        try:
            s.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait()
            pytest.fail("SIGTERM did not stop the server within 5 s while its worker script could not boot:\n"
                        + s.log()[-1500:])
        assert s.proc.returncode == 0, s.log()[-1500:]
        return
    # Fixed code is picked up by the retries (a backoff of a few seconds).
    with open(script, "w") as f:
        f.write("<?php\nwhile (frankenphp_handle_request(function () { echo 'fixed'; })) {}\n")
    deadline = time.time() + 10
    body = None
    while time.time() < deadline:
        try:
            r = requests.get(s.url("/"), timeout=2)
            if r.status_code == 200:
                body = r.text
                break
        except requests.exceptions.RequestException:
            pass
        time.sleep(0.1)
    assert body == "fixed", s.log()[-3000:]


# ---- the API --------------------------------------------------------------------------------------


def _read_timed(port, data, timeout=5.0):
    """Sends data; returns [(arrival_time, bytes)] until the server closes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = []
    try:
        sock.sendall(data)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                b = sock.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            out.append((time.time(), b))
    finally:
        sock.close()
    return out


@pytest.mark.parametrize("ns", [False, True], ids=["frankenphp", "tusk_ns"])
def test_early_hints_103(start_server, mode, ns):
    s = serve(start_server, mode)
    path = "/hints?ns=1" if ns else "/hints"
    chunks = _read_timed(s.port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
    data = b"".join(c for _, c in chunks)
    assert data.startswith(b"HTTP/1.1 103 "), data[:300]
    hints, _, rest = data.partition(b"\r\n\r\n")
    assert b"\r\nLink: </style.css>; rel=preload; as=style" in hints, hints
    assert b"app.js" not in hints
    assert b"content-length" not in hints.lower()
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:300]
    final_head, _, body = rest.partition(b"\r\n\r\n")
    final_lines = final_head.split(b"\r\n")
    assert b"Link: </app.js>; rel=preload; as=script" in final_lines, final_head
    assert body.startswith(b"final body after hints")
    # The hints reached the client before the final response was produced
    # (the handler sleeps 300 ms in between).
    t_hints = chunks[0][0]
    t_final = next(t for t, _ in _arrivals(chunks, b"HTTP/1.1 200"))
    assert t_final - t_hints > 0.2, (t_hints, t_final)


def _arrivals(chunks, marker):
    """(time, offset) of the chunk where marker first appears in the stream."""
    acc = b""
    for t, c in chunks:
        acc += c
        if marker in acc:
            yield t, len(acc)
            return


def test_finish_request(start_server, mode):
    s = serve(start_server, mode)
    for path in ("/finish", "/finish?ns=1"):
        t0 = time.time()
        r = get(s, path)
        elapsed = time.time() - t0
        assert r.status_code == 200 and r.text == "finished-early"
        assert elapsed < 0.45, elapsed
        # The handler went on after the response; the next request sees it.
        d = info(s)
        assert d["after_finish"]["ok"] is True
        assert d["after_finish"]["at"] - t0 > 0.45


def test_request_headers(start_server, mode):
    s = serve(start_server, mode)
    d = info(s, "/request-headers", headers={"X-Custom": "abc", "X-Mixed-Case": "Value 2"})
    for k in ("frankenphp", "tusk", "getallheaders"):
        h = d[k]
        assert h["X-Custom"] == "abc", h
        assert h["X-Mixed-Case"] == "Value 2", h
        assert h["Host"] == "127.0.0.1:%d" % s.port, h
    assert d["frankenphp"] == d["tusk"] == d["getallheaders"]
    d = info(s, "/request-headers")
    assert "X-Custom" not in d["frankenphp"] and "X-Mixed-Case" not in d["frankenphp"], d


def test_configuration_by_environment(start_server, mode):
    s = start_server(APP, "--mode", mode, workers=1,
                     env={"TUSK_WORKER": APP_SCRIPT, "TUSK_MAX_REQUESTS": "2"})
    seen = [info(s) for _ in range(3)]
    assert [x["frankenphp_worker"] for x in seen] == ["1"] * 3
    assert [x["handled"] for x in seen] == [1, 2, 1]
    assert seen[0]["pid"] == seen[1]["pid"] != seen[2]["pid"]


# ---- reload ---------------------------------------------------------------------------------------


def _reload_root(tmp_path):
    root = str(tmp_path / "reload")
    shutil.copytree(os.path.join(WORKER_DIR, "reload"), root)
    return root


def _set_version(root, v):
    path = os.path.join(root, "src", "lib", "version.php")
    with open(path, "w") as f:
        f.write("<?php\nconst APP_VERSION = '%s';\n" % v)


def test_reload_signal_under_load(start_server, mode, tmp_path):
    root = _reload_root(tmp_path)
    s = serve(start_server, mode, root=root, script=os.path.join(root, "worker.php"), workers=2)
    assert get(s, "/").text.startswith("v1 ")
    stop = threading.Event()
    results, errors = [], []
    lock = threading.Lock()

    def load():
        while not stop.is_set():
            try:
                r = requests.get(s.url("/?ms=10"), timeout=T)
                with lock:
                    results.append((time.time(), r.status_code, r.text))
            except requests.exceptions.RequestException as e:
                with lock:
                    errors.append((time.time(), repr(e)))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    signals = {}
    try:
        time.sleep(0.3)
        # Three deploys in a row (a deploy script may reload more than once).
        for v, sig in (("v2", signal.SIGUSR2), ("v3", signal.SIGHUP), ("v4", signal.SIGUSR2)):
            _set_version(root, v)
            signals[v] = time.time()
            s.send_signal(sig)
            deadline = signals[v] + 5
            while time.time() < deadline and s.proc.poll() is None:
                with lock:
                    if sum(1 for _, _, b in results if b.startswith(v + " ")) >= 10:
                        break
                time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert s.proc.poll() is None, "the master died during reloads: %s\n%s" % (s.proc.returncode, s.log()[-2000:])
    assert errors == [], errors[:5]
    bad = [x for x in results if x[1] != 200 or not re.match(r"^v[1-4] \d+$", x[2])]
    assert bad == [], bad[:5]
    pids = {}
    for v, t_sig in signals.items():
        got = [x for x in results if x[2].startswith(v + " ")]
        assert got, "%s never served:\n%s" % (v, s.log()[-2000:])
        assert got[0][0] - t_sig < 3
        pids[v] = {x[2].split()[1] for x in got}
    pids["v1"] = {x[2].split()[1] for x in results if x[2].startswith("v1 ")}
    # Each deploy runs in new processes.
    for a, b in (("v1", "v2"), ("v2", "v3"), ("v3", "v4")):
        assert not (pids[a] & pids[b]), pids
    for _ in range(4):
        assert get(s, "/").text.startswith("v4 ")


@pytest.mark.parametrize("form", [
    "comma",
    "repeated",
])
def test_watch_reloads_on_change(start_server, mode, form, tmp_path):
    root = _reload_root(tmp_path)
    other = str(tmp_path / "other")
    os.mkdir(other)
    src = os.path.join(root, "src")  # the changed file is in src/lib/
    if form == "comma":
        args = ("--watch", "%s,%s" % (other, src))
    else:
        args = ("--watch", src, "--watch", other)
    s = serve(start_server, mode, *args, root=root, script=os.path.join(root, "worker.php"), workers=2)
    body = get(s, "/").text
    assert body.startswith("v1 ")
    for v in ("v2", "v3", "v4"):
        before = body
        time.sleep(0.2)
        _set_version(root, v)
        t0 = time.time()
        while time.time() - t0 < 4 and s.proc.poll() is None:
            try:
                body = get(s, "/").text
            except requests.exceptions.RequestException:
                pass
            if body.startswith(v + " "):
                break
            time.sleep(0.05)
        assert s.proc.poll() is None, "the master died: %s\n%s" % (s.proc.returncode, s.log()[-2000:])
        assert body.startswith(v + " "), "no reload after a change under --watch:\n" + s.log()
        assert time.time() - t0 < 2.5
        assert body.split()[1] != before.split()[1]


# ---- real applications: Symfony 5.4 and Slim 3 ---------------------------------------------------------


APP_GREETING = {"symfony": "Hello from Symfony\n", "slim": "Hello from Slim\n"}

needs_framework = {
    "symfony": pytest.mark.skipif(not os.path.isfile("/usr/share/php/Symfony/Component/HttpKernel/autoload.php"),
                                  reason="Debian's php-symfony-http-kernel is not installed"),
    "slim": pytest.mark.skipif(not os.path.isfile("/usr/share/php/Slim/App.php"),
                               reason="Debian's php-slim is not installed"),
}


@pytest.mark.parametrize("framework", [pytest.param(f, marks=needs_framework[f]) for f in ("symfony", "slim")])
def test_framework_app_under_load(start_server, mode, framework, tmp_path):
    public = os.path.join(APPS, framework, "public")
    s = serve(start_server, mode, "-d", "session.save_path=%s" % tmp_path,
              root=public, script=os.path.join(public, "worker.php"), workers=2)
    greeting = APP_GREETING[framework]

    # Single requests first: routing, 404, static file.
    r = get(s, "/")
    assert r.status_code == 200 and r.text == greeting, (r.status_code, r.text, s.log())
    assert get(s, "/hello/W%C3%B6rld").text == "Hello Wörld"
    assert get(s, "/no/such/route").status_code == 404
    r = get(s, "/robots.txt")
    assert r.status_code == 200 and r.text == "User-agent: *\n" and "x-worker-pid" not in r.headers

    total, nthreads = 2000, 8
    per = total // nthreads
    errors = []
    pids = {}
    served_max = {}
    session_ids = {}
    lock = threading.Lock()

    def client(i):
        rnd = random.Random(i)
        http = requests.Session()
        n = 0
        sid = None
        try:
            for j in range(per):
                op = j % 5
                if op == 0:
                    r = http.get(s.url("/"), timeout=T)
                    ok = r.status_code == 200 and r.text == greeting
                elif op == 1:
                    name = "c%d-%d" % (i, j)
                    r = http.get(s.url("/hello/" + name), timeout=T)
                    ok = r.status_code == 200 and r.text == "Hello " + name
                elif op == 2:
                    field = "f%d-%d é&=" % (i, j)
                    r = http.post(s.url("/form?q=%d" % j), data={"field": field, "other": str(j)}, timeout=T)
                    ok = r.status_code == 200 and r.json() == {
                        "field": field, "all": {"field": field, "other": str(j)}, "query": {"q": str(j)}}
                elif op == 3:
                    tag = "t%d" % i if n == 0 else None
                    r = http.get(s.url("/session" + ("?tag=" + tag if tag else "")), timeout=T)
                    d = r.json() if r.status_code == 200 else {}
                    n += 1
                    ok = d.get("n") == n and d.get("tag") == "t%d" % i and (sid is None or d.get("id") == sid)
                    sid = d.get("id", sid)
                else:
                    data = rnd.randbytes(rnd.randint(1, 40000))
                    r = http.post(s.url("/upload"), files={"file": ("u%d-%d.bin" % (i, j), data)},
                                  data={"note": "n%d" % j}, timeout=T)
                    ok = r.status_code == 200 and r.json() == {
                        "name": "u%d-%d.bin" % (i, j), "size": len(data),
                        "md5": hashlib.md5(data).hexdigest(), "note": "n%d" % j}
                pid = r.headers.get("x-worker-pid")
                ok = ok and pid is not None and r.headers.get("x-boot-pid") == pid
                with lock:
                    if not ok:
                        errors.append((i, j, r.status_code, r.text[:300]))
                    else:
                        pids[pid] = pids.get(pid, 0) + 1
                        served_max[pid] = max(served_max.get(pid, 0), int(r.headers["x-served"]))
        except Exception as e:  # noqa: BLE001 - reported as a failure below
            with lock:
                errors.append((i, "exception", repr(e)))
        with lock:
            session_ids[i] = sid

    threads = [threading.Thread(target=client, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], "%d failures, first: %s\n%s" % (len(errors), errors[:5], s.log()[-3000:])
    assert sum(pids.values()) == per * nthreads
    # Both workers served, and each kept its booted app across requests.
    assert len(pids) >= 2, pids
    assert all(m > 1 for m in served_max.values()), served_max
    # Every client had its own session.
    assert len(set(session_ids.values())) == nthreads and None not in session_ids.values(), session_ids


@needs_framework["symfony"]
def test_symfony_response_has_one_date_header(start_server, mode, tmp_path):
    """Symfony's Response always sets Date; the client must get one Date
    field (it is a singleton field, RFC 9110 6.6.1), as behind nginx."""
    public = os.path.join(APPS, "symfony", "public")
    s = serve(start_server, mode, "-d", "session.save_path=%s" % tmp_path,
              root=public, script=os.path.join(public, "worker.php"))
    data = raw_request(s.port, b"GET /hello/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"Hello x", data
    dates = [l for l in head.split(b"\r\n") if l.lower().startswith(b"date:")]
    assert len(dates) == 1, head
