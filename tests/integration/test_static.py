"""Static files served from C: types, large files, ranges, validators,
directories, what must never be served, symlinks, methods, slow readers."""
import hashlib
import os
import random
import shutil
import socket
import threading
import time

import pytest

from conftest import parse_responses, raw_request
from test_http import Conn, assert_no_crash, get

SOURCE_MARKERS = (b"SOURCE-MARKER", b"<?php")


def make_docroot(php_case, tmp_path):
    """Copies tests/integration/php/static to tmp_path/root and adds the
    generated and binary files."""
    root = tmp_path / "root"
    shutil.copytree(php_case("static"), root, symlinks=True)
    # A minimal real PNG (1x1, transparent).
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082")
    (root / "pixel.png").write_bytes(png)
    (root / "blob.xyz").write_bytes(b"\x00\x01binary\xff")
    (root / "LICENSE").write_bytes(b"no extension\n")
    (root / "thousand.bin").write_bytes(bytes(i % 251 for i in range(1000)))
    (root / ".env").write_text("DB_PASSWORD=dotenv-secret\n")
    (root / ".htaccess").write_text("Deny from all # htaccess-secret\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n\tgit-secret = 1\n")
    (root / "sub" / ".hidden").write_text("hidden-secret\n")
    return root


@pytest.fixture
def docroot(php_case, tmp_path):
    return make_docroot(php_case, tmp_path)


@pytest.fixture
def server(start_server, docroot):
    return start_server(str(docroot))


def fetch(port, path, extra=b"", method=b"GET"):
    """One request on a fresh connection; returns (status, headers, body)."""
    req = method + b" " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + extra + b"\r\n"
    out = raw_request(port, req)
    rs = parse_responses(out)
    assert len(rs) == 1, out[:300]
    if method == b"HEAD":
        return rs[0][0], rs[0][1], b""
    return rs[0]


@pytest.mark.parametrize("name,ctype", [
    ("index.html", "text/html"),
    ("style.css", "text/css"),
    ("app.js", "javascript"),
    ("data.json", "application/json"),
    ("pixel.png", "image/png"),
    ("blob.xyz", "application/octet-stream"),
    ("LICENSE", "application/octet-stream"),
])
def test_mime_types(server, docroot, name, ctype):
    st, h, body = fetch(server.port, "/" + name)
    assert st == 200
    assert body == (docroot / name).read_bytes()
    assert h["content-length"] == str(len(body))
    if ctype == "javascript":
        assert h["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    else:
        assert h["content-type"].split(";")[0].strip() == ctype


def test_large_file_intact_over_keep_alive(start_server, docroot):
    data = random.Random(5).randbytes(5 * 1024 * 1024 + 7)
    (docroot / "big.bin").write_bytes(data)
    s = start_server(str(docroot), "--drain-timeout", "1")
    c = Conn(s.port, timeout=5)
    for _ in range(2):
        c.send(get("/big.bin"))
        st, h, body, _ = c.read_response()
        assert st == 200 and h["content-length"] == str(len(data))
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()
        c.send(get("/style.css"))
        st, _, body, _ = c.read_response()
        assert (st, body) == (200, b"body { color: red; }\n")
    # A range from the middle of the large file.
    c.send(get("/big.bin", b"Range: bytes=3000000-3999999\r\n"))
    st, h, body, _ = c.read_response()
    assert st == 206 and body == data[3000000:4000000]
    assert h["content-range"] == "bytes 3000000-3999999/%d" % len(data)
    c.close()


def test_large_file_downloads_never_stall(start_server, docroot):
    data = random.Random(6).randbytes(5 * 1024 * 1024)
    (docroot / "big.bin").write_bytes(data)
    s = start_server(str(docroot), "--drain-timeout", "1")
    for i in range(12):
        c = Conn(s.port, timeout=3)
        c.send(get("/big.bin"))
        st, _, body, _ = c.read_response()
        assert st == 200 and len(body) == len(data), i
        # The connection is ready for the next request.
        c.send(get("/style.css"))
        assert c.read_response()[2] == b"body { color: red; }\n", i
        c.close()


@pytest.mark.parametrize("rng,status,start,end", [
    ("bytes=0-99", 206, 0, 100),
    ("bytes=-10", 206, 990, 1000),
    ("bytes=100-", 206, 100, 1000),
    ("bytes=990-5000", 206, 990, 1000),
    ("bytes=999-999", 206, 999, 1000),
])
def test_range_requests(server, docroot, rng, status, start, end):
    data = (docroot / "thousand.bin").read_bytes()
    st, h, body = fetch(server.port, "/thousand.bin", b"Range: " + rng.encode() + b"\r\n")
    assert st == status
    assert body == data[start:end]
    assert h["content-length"] == str(end - start)
    assert h["content-range"] == "bytes %d-%d/1000" % (start, end - 1)


@pytest.mark.parametrize("rng", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_range_is_416(server, rng):
    c = Conn(server.port)
    c.send(get("/thousand.bin", b"Range: " + rng.encode() + b"\r\n"))
    st, h, body, _ = c.read_response()
    assert st == 416
    assert h["content-range"] == "bytes */1000"
    assert b"\x00\x01\x02" not in body
    # The connection stays in sync.
    c.send(get("/style.css"))
    assert c.read_response()[2] == b"body { color: red; }\n"
    c.close()


def test_range_ignored_when_malformed_or_if_range_differs(server, docroot):
    data = (docroot / "thousand.bin").read_bytes()
    st, h, body = fetch(server.port, "/thousand.bin", b"Range: items=0-5\r\n")
    assert st == 200 and body == data
    st, h, body = fetch(server.port, "/thousand.bin", b'Range: bytes=0-5\r\nIf-Range: "other"\r\n')
    assert st == 200 and body == data
    etag = fetch(server.port, "/thousand.bin")[1]["etag"]
    st, h, body = fetch(server.port, "/thousand.bin", b"Range: bytes=0-5\r\nIf-Range: " + etag.encode() + b"\r\n")
    assert st == 206 and body == data[:6]


def test_validators_and_conditional_requests(server):
    st, h, body = fetch(server.port, "/style.css")
    assert st == 200
    etag, lm = h["etag"], h["last-modified"]
    assert etag.startswith(('"', 'W/"')) and etag.endswith('"')
    assert lm.endswith(" GMT")
    c = Conn(server.port)
    c.send(get("/style.css", b"If-None-Match: " + etag.encode() + b"\r\n"))
    st, h304, _, _ = c.read_response()
    assert st == 304 and h304["etag"] == etag
    c.send(get("/style.css", b'If-None-Match: "nope", ' + etag.encode() + b"\r\n"))
    assert c.read_response()[0] == 304
    c.send(get("/style.css", b"If-Modified-Since: " + lm.encode() + b"\r\n"))
    assert c.read_response()[0] == 304
    # Stale validators get the file.
    c.send(get("/style.css", b'If-None-Match: "nope"\r\n'))
    st, _, body, _ = c.read_response()
    assert st == 200 and body == b"body { color: red; }\n"
    c.send(get("/style.css", b"If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n"))
    st, _, body, _ = c.read_response()
    assert st == 200 and body == b"body { color: red; }\n"
    # A 304 carries no body: the next response follows right after it.
    c.send(get("/style.css", b"If-None-Match: " + etag.encode() + b"\r\n") + get("/app.js"))
    assert c.read_response()[0] == 304
    st, _, body, _ = c.read_response()
    assert (st, body) == (200, b'console.log("app");\n')
    c.close()


def test_etag_changes_when_file_changes(server, docroot):
    etag1 = fetch(server.port, "/style.css")[1]["etag"]
    p = docroot / "style.css"
    p.write_text("body { color: blue; }\n")
    os.utime(p, (time.time() + 10, time.time() + 10))
    st, h, body = fetch(server.port, "/style.css", b"If-None-Match: " + etag1.encode() + b"\r\n")
    assert st == 200 and body == b"body { color: blue; }\n" and h["etag"] != etag1


def test_static_cache_control(start_server, docroot):
    s = start_server(str(docroot), "--static-cache-control", "public, max-age=60")
    st, h, _ = fetch(s.port, "/style.css")
    assert st == 200 and h["cache-control"] == "public, max-age=60"
    st, h, _ = fetch(s.port, "/foo.php")
    assert st == 200 and h.get("cache-control") != "public, max-age=60"


def test_no_cache_control_by_default(server):
    assert "cache-control" not in fetch(server.port, "/style.css")[1]


def test_directory_index_and_redirect(server, docroot):
    st, h, body = fetch(server.port, "/")
    assert st == 200 and body == (docroot / "index.html").read_bytes()
    st, h, body = fetch(server.port, "/sub/")
    assert st == 200 and body == b"<!DOCTYPE html>\n<html><body>sub index</body></html>\n"
    assert h["content-type"].startswith("text/html")
    st, h, _ = fetch(server.port, "/sub")
    assert st == 301 and h["location"] == "/sub/"
    st, h, _ = fetch(server.port, "/sub?a=1&b=two")
    assert st == 301 and h["location"] == "/sub/?a=1&b=two"


def test_directory_redirect_location_is_a_valid_uri(server, docroot):
    (docroot / "my dir").mkdir()
    (docroot / "my dir" / "index.html").write_text("spaced\n")
    (docroot / "a#b").mkdir()
    st, h, _ = fetch(server.port, "/my%20dir?x=1")
    assert st == 301 and h["location"] == "/my%20dir/?x=1"
    st, _, body = fetch(server.port, "/my%20dir/")
    assert (st, body) == (200, b"spaced\n")
    st, h, _ = fetch(server.port, "/a%23b")
    assert st == 301 and h["location"] == "/a%23b/"
    # "//sub" must not become a protocol-relative redirect to host "sub".
    st, h, _ = fetch(server.port, "//sub")
    assert st == 301 and h["location"] == "/sub/"


def test_php_source_is_never_served(server, docroot):
    st, h, body = fetch(server.port, "/foo.php")
    assert (st, body) == (200, b"executed:42")
    for name in ("foo.phtml", "foo.phar"):
        st, h, body = fetch(server.port, "/" + name)
        assert st == 403, (name, st)
        assert not any(m in body for m in SOURCE_MARKERS), body
    # Other spellings of the same request.
    for path in ("/FOO.PHTML", "/foo.phtml/", "/foo.phtml?x=1", "/%66oo.phtml", "/sub/../foo.phtml", "/./foo.phar"):
        st, h, body = fetch(server.port, path)
        assert st in (400, 403, 404), (path, st)
        assert not any(m in body for m in SOURCE_MARKERS), (path, body)
    (docroot / "copy.PHP").write_bytes((docroot / "foo.php").read_bytes())
    st, _, body = fetch(server.port, "/copy.PHP")
    assert not any(m in body for m in SOURCE_MARKERS), body
    # HEAD and Range do not leak it either.
    st, _, body = fetch(server.port, "/foo.phtml", b"Range: bytes=0-20\r\n")
    assert st == 403 and not any(m in body for m in SOURCE_MARKERS)


@pytest.mark.parametrize("path", ["/.env", "/.git/config", "/.htaccess", "/.git/", "/.git", "/sub/.hidden",
                                  "/%2eenv", "/.well-known/../.env", "/sub/../.htaccess"])
def test_dotfiles_are_not_served(server, path):
    st, h, body = fetch(server.port, path)
    assert st == 404, (path, st)
    assert b"secret" not in body


def test_well_known_is_served(server):
    st, h, body = fetch(server.port, "/.well-known/x")
    assert (st, body) == (200, b"well-known content\n")


@pytest.mark.parametrize("target", [
    "/../etc/passwd",
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "/a/..%2f..%2fetc/passwd",
    "/sub/..%2f..%2f..%2f..%2fetc/passwd",
    "/%252e%252e/%252e%252e/etc/passwd",
    "/..%252f..%252f..%252fetc/passwd",
    "/..\\..\\..\\etc\\passwd",
    "/sub/../../etc/passwd",
    "/.%2e/.%2e/etc/passwd",
    "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "//etc/passwd",
    "/etc/passwd%00.html",
    "http://localhost/../../etc/passwd",
])
def test_path_traversal_never_escapes_the_root(server, target):
    out = raw_request(server.port, b"GET " + target.encode() + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    rs = parse_responses(out)
    assert len(rs) == 1
    assert rs[0][0] in (400, 404), (target, rs[0][0])
    assert b"root:" not in out
    assert_alive_static(server)


def assert_alive_static(s):
    assert_no_crash(s)
    assert fetch(s.port, "/style.css")[0] == 200


def make_links(docroot, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside-secret\n")
    os.symlink(outside / "secret.txt", docroot / "link-out.txt")
    os.symlink(outside, docroot / "dir-out")
    os.symlink("style.css", docroot / "link-in.css")
    os.symlink("sub", docroot / "dir-in")
    os.symlink("../style.css", docroot / "sub" / "up.css")


def test_symlinks_default(start_server, docroot, tmp_path):
    make_links(docroot, tmp_path)
    s = start_server(str(docroot))
    for path in ("/link-out.txt", "/dir-out/secret.txt"):
        st, _, body = fetch(s.port, path)
        assert st == 404, (path, st)
        assert b"outside-secret" not in body
    st, h, body = fetch(s.port, "/link-in.css")
    assert (st, body) == (200, b"body { color: red; }\n")
    assert h["content-type"].startswith("text/css")
    assert fetch(s.port, "/sub/up.css")[2] == b"body { color: red; }\n"
    st, _, body = fetch(s.port, "/dir-in/")
    assert st == 200 and b"sub index" in body


def test_symlinks_allowed(start_server, docroot, tmp_path):
    make_links(docroot, tmp_path)
    s = start_server(str(docroot), "--allow-symlinks")
    for path in ("/link-out.txt", "/dir-out/secret.txt"):
        st, _, body = fetch(s.port, path)
        assert (st, body) == (200, b"outside-secret\n"), path
    # Allowing symlinks does not allow "..".
    st, _, body = fetch(s.port, "/../outside/secret.txt")
    assert st in (400, 404) and b"outside-secret" not in body
    assert fetch(s.port, "/link-in.css")[2] == b"body { color: red; }\n"


def test_absolute_symlink_to_inside_the_root_is_served(start_server, docroot):
    # Deploy tools often create absolute links; this one stays inside.
    os.symlink(docroot / "style.css", docroot / "abs-in.css")
    os.symlink(docroot / "sub", docroot / "abs-dir")
    s = start_server(str(docroot))
    assert fetch(s.port, "/abs-in.css")[:3:2] == (200, b"body { color: red; }\n")
    st, _, body = fetch(s.port, "/abs-dir/index.html")
    assert st == 200 and b"sub index" in body


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"PATCH"])
def test_non_get_on_static_file_is_405(server, method):
    c = Conn(server.port)
    c.send(method + b" /style.css HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
    st, h, body, _ = c.read_response()
    assert st == 405
    allow = [m.strip() for m in h["allow"].split(",")]
    assert "GET" in allow and "HEAD" in allow and method.decode() not in allow
    assert b"color: red" not in body
    # The body was consumed, not taken for the next request.
    c.send(get("/style.css"))
    assert c.read_response()[2] == b"body { color: red; }\n"
    c.close()


def test_head_on_static_file(server, docroot):
    data = (docroot / "thousand.bin").read_bytes()
    c = Conn(server.port)
    c.send(b"HEAD /thousand.bin HTTP/1.1\r\nHost: localhost\r\n\r\n" + get("/style.css"))
    st, h, _, _ = c.read_response(head_request=True)
    assert st == 200 and h["content-length"] == str(len(data))
    st, _, body, _ = c.read_response()
    assert (st, body) == (200, b"body { color: red; }\n")
    c.close()


def test_slow_reader_does_not_block_others(start_server, docroot):
    data = random.Random(2).randbytes(2 * 1024 * 1024)
    (docroot / "two.bin").write_bytes(data)
    s = start_server(str(docroot))
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(10)
    slow.connect(("127.0.0.1", s.port))
    slow.sendall(get("/two.bin"))
    got = bytearray()
    done = threading.Event()
    err = []

    def reader():
        try:
            t_end = time.time() + 30
            while time.time() < t_end:
                b = slow.recv(4096)
                if not b:
                    break
                got.extend(b)
                head_end = got.find(b"\r\n\r\n")
                if head_end >= 0 and len(got) - head_end - 4 >= len(data):
                    break
                time.sleep(0.004)
        except Exception as e:  # reported below
            err.append(e)
        done.set()

    t = threading.Thread(target=reader)
    t.start()
    # Meanwhile, others get quick answers, static and PHP.
    latencies = []
    fast = Conn(s.port)
    while not done.is_set() and len(latencies) < 60:
        t0 = time.time()
        fast.send(get("/style.css"))
        assert fast.read_response()[2] == b"body { color: red; }\n"
        fast.send(get("/foo.php"))
        assert fast.read_response()[2] == b"executed:42"
        latencies.append(time.time() - t0)
        time.sleep(0.01)
    fast.close()
    t.join(35)
    slow.close()
    assert not err, err
    assert len(latencies) >= 5, "the slow download finished too fast to test anything"
    # Far below the time the slow download takes.
    assert max(latencies) < 1.0, latencies
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert len(body) == len(data)
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
