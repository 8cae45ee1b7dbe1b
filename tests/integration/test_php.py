"""PHP behaviour as a php-fpm + nginx (fastcgi_params) user expects it.

Every test runs real PHP scripts from php/php_features/ in the real tusk
binary and looks only at what a client (or the log) sees.
"""
import json
import os
import socket
import time

import pytest
import requests

from conftest import parse_responses, raw_request, TEST_MODE

SYSTEM_INI = "/etc/php/8.2/embed/php.ini"


# ---- helpers -------------------------------------------------------------------------------


@pytest.fixture
def docroot(php_case):
    return os.path.realpath(php_case("php_features"))


@pytest.fixture
def front_root(php_case):
    return os.path.realpath(php_case(os.path.join("php_features", "front")))


def get_json(s, path, method="GET", **kw):
    r = requests.request(method, s.url(path), timeout=10, **kw)
    assert r.status_code == 200, (r.status_code, r.text, s.log())
    return r.json()


def raw_exchange(port, data, timeout=5.0):
    """Sends one request on a fresh connection; returns (status, [(name, value)], body, sock_name)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        local = sock.getsockname()
        sock.sendall(data)
        buf = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                b = sock.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            buf += b
            if _complete(buf):
                break
    finally:
        sock.close()
    head, _, _ = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    status, _, body = parse_responses(buf)[0]
    return lines[0], headers, body, local


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


def all_values(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


# ---- 1. $_SERVER ----------------------------------------------------------------------------


def test_server_vars_for_path_info_and_query(start_server, docroot):
    s = start_server(docroot)
    t0 = time.time()
    sv = get_json(s, "/server.php/extra/path?a=1&b=two%20words")
    t1 = time.time()
    assert sv["SCRIPT_FILENAME"] == os.path.join(docroot, "server.php")
    assert sv["SCRIPT_NAME"] == "/server.php"
    assert sv["PATH_INFO"] == "/extra/path"
    assert sv["PHP_SELF"] == "/server.php/extra/path"
    assert sv["DOCUMENT_ROOT"] == docroot
    assert sv["REQUEST_URI"] == "/server.php/extra/path?a=1&b=two%20words"
    assert sv["QUERY_STRING"] == "a=1&b=two%20words"
    assert sv["REQUEST_METHOD"] == "GET"
    assert sv["REMOTE_ADDR"] == "127.0.0.1"
    assert sv["SERVER_ADDR"] == "127.0.0.1"
    assert sv["SERVER_PORT"] == str(s.port)
    assert sv["SERVER_NAME"] == "127.0.0.1"
    assert sv["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert sv["HTTP_HOST"] == "127.0.0.1:%d" % s.port
    assert sv["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert sv["REQUEST_SCHEME"] == "http"
    assert sv["REDIRECT_STATUS"] == "200"
    assert "HTTPS" not in sv
    # A GET without a body: nginx passes both as empty strings.
    assert sv["CONTENT_TYPE"] == "" and sv["CONTENT_LENGTH"] == ""
    assert isinstance(sv["REQUEST_TIME"], int)
    assert isinstance(sv["REQUEST_TIME_FLOAT"], float)
    assert int(t0) - 1 <= sv["REQUEST_TIME"] <= t1 + 1
    assert t0 - 1 <= sv["REQUEST_TIME_FLOAT"] <= t1 + 1
    assert int(sv["REQUEST_TIME_FLOAT"]) == sv["REQUEST_TIME"]
    # Without PATH_INFO
    sv = get_json(s, "/server.php")
    assert sv["PHP_SELF"] == "/server.php" and sv["SCRIPT_NAME"] == "/server.php"
    assert "PATH_INFO" not in sv or sv["PATH_INFO"] == ""
    assert sv["REQUEST_URI"] == "/server.php" and sv["QUERY_STRING"] == ""


def test_server_vars_remote_port_host_and_protocols(start_server, docroot):
    s = start_server(docroot)
    req = (b"GET /server.php HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close\r\n\r\n")
    status, headers, body, local = raw_exchange(s.port, req)
    assert status.startswith("HTTP/1.1 200")
    sv = json.loads(body)
    assert sv["REMOTE_ADDR"] == local[0]
    assert sv["REMOTE_PORT"] == str(local[1])
    assert sv["HTTP_HOST"] == "example.test:8080"
    assert sv["SERVER_NAME"] == "example.test"
    assert sv["SERVER_PORT"] == str(s.port)
    assert sv["SERVER_PROTOCOL"] == "HTTP/1.1"

    status, headers, body, _ = raw_exchange(s.port, b"GET /server.php HTTP/1.0\r\nHost: old.test\r\n\r\n")
    assert status.split()[1] == "200"
    sv = json.loads(body)
    assert sv["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert sv["HTTP_HOST"] == "old.test"

    # HTTP/1.0 without Host: no HTTP_HOST, SERVER_NAME still set.
    status, headers, body, _ = raw_exchange(s.port, b"GET /server.php HTTP/1.0\r\n\r\n")
    sv = json.loads(body)
    assert "HTTP_HOST" not in sv and sv["SERVER_NAME"] != ""


def test_server_vars_post_body_and_headers(start_server, docroot):
    s = start_server(docroot)
    body = b"x=1&y=2"
    req = (b"POST /server.php?q=1 HTTP/1.1\r\nHost: h.test\r\n"
           b"Content-Type: application/x-www-form-urlencoded\r\n"
           b"Content-Length: 7\r\n"
           b"X-Dup: a\r\nX-Dup: b\r\n"
           b"X-Forwarded-For: good\r\nX_Forwarded_For: evil\r\n"
           b"X_Only_Underscore: hidden\r\n"
           b"Proxy: http://evil.test/\r\n"
           b"Cookie: a=1\r\nCookie: b=2\r\n"
           b"Connection: close\r\n\r\n" + body)
    status, _, out, _ = raw_exchange(s.port, req)
    assert status.split()[1] == "200", out
    sv = json.loads(out)
    assert sv["REQUEST_METHOD"] == "POST"
    assert sv["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert sv["CONTENT_LENGTH"] == "7"
    # nginx passes every request field as HTTP_*, these two included.
    assert sv["HTTP_CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert sv["HTTP_CONTENT_LENGTH"] == "7"
    assert sv["REQUEST_URI"] == "/server.php?q=1"
    # Duplicate fields are joined; the underscore spelling cannot spoof the
    # dash one and is not passed at all (nginx underscores_in_headers off).
    assert sv["HTTP_X_DUP"] == "a, b"
    assert sv["HTTP_X_FORWARDED_FOR"] == "good"
    assert "HTTP_X_ONLY_UNDERSCORE" not in sv
    assert not any("ONLY_UNDERSCORE" in k for k in sv)
    assert "HTTP_PROXY" not in sv  # httpoxy
    assert sv["HTTP_COOKIE"] == "a=1; b=2"


def test_server_vars_auth_and_path_info_decoding(start_server, docroot):
    s = start_server(docroot)
    sv = get_json(s, "/server.php/a%20b/c%2Fd?x=%20", auth=("al ice", "p:w"))
    # nginx passes PATH_INFO decoded and REQUEST_URI as sent.
    assert sv["PATH_INFO"] == "/a b/c/d"
    assert sv["REQUEST_URI"] == "/server.php/a%20b/c%2Fd?x=%20"
    assert sv["PHP_AUTH_USER"] == "al ice" and sv["PHP_AUTH_PW"] == "p:w"
    assert sv["HTTP_AUTHORIZATION"].startswith("Basic ")


def test_getenv_sees_request_variables(start_server, docroot):
    # Under php-fpm getenv() reads the FastCGI params; code written for it
    # (getenv('HTTP_X_FORWARDED_FOR'), getenv('REQUEST_METHOD')) relies on it.
    s = start_server(docroot)
    v = get_json(s, "/env.php", headers={"X-Trace": "t-1"})
    assert v["REQUEST_METHOD"] == "GET"
    assert v["HTTP_HOST"] == "127.0.0.1:%d" % s.port
    assert v["HTTP_X_TRACE"] == "t-1"
    assert v["SCRIPT_NAME"] == "/env.php"


def test_keep_alive_php_requests_share_the_connection(start_server, docroot):
    s = start_server(docroot)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    try:
        local = sock.getsockname()
        got = []
        for i in range(3):
            sock.sendall(b"GET /server.php?i=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
            buf = b""
            while not _complete(buf):
                b = sock.recv(65536)
                assert b, buf
                buf += b
            got.append(json.loads(parse_responses(buf)[0][2]))
    finally:
        sock.close()
    assert [g["QUERY_STRING"] for g in got] == ["i=0", "i=1", "i=2"]
    assert {g["REMOTE_PORT"] for g in got} == {str(local[1])}


# ---- 2. request superglobals ------------------------------------------------------------------


def test_get_arrays_and_encoding(start_server, docroot):
    s = start_server(docroot)
    v = get_json(s, "/vars.php?a[]=1&a[]=2&m[k]=v&m[n][]=x&enc=%20%26%3D%C3%A9%2B&plus=a+b&empty=")
    assert v["get"] == {"a": ["1", "2"], "m": {"k": "v", "n": ["x"]}, "enc": " &=\u00e9+", "plus": "a b", "empty": ""}
    assert v["post"] == [] and v["files"] == []


def test_post_urlencoded_cookies_and_request(start_server, docroot):
    s = start_server(docroot)
    v = get_json(s, "/vars.php?same=get&g=1", method="POST",
                 data={"p": "x y&z", "arr[]": ["1", "2"], "same": "post"},
                 cookies={"c1": "one", "c2": "two words", "same": "cookie"})
    assert v["method"] == "POST"
    assert v["post"] == {"p": "x y&z", "arr": ["1", "2"], "same": "post"}
    assert v["cookie"] == {"c1": "one", "c2": "two words", "same": "cookie"}
    assert v["get"] == {"same": "get", "g": "1"}
    # request_order = "GP" in the system php.ini: POST wins over GET, no cookies.
    assert v["request"] == {"same": "post", "g": "1", "p": "x y&z", "arr": ["1", "2"]}
    # The body was consumed into $_POST; php://input still has it.
    assert v["input1"] == v["input2"] and "same=post" in v["input1"]


def test_post_multipart_fields(start_server, docroot):
    s = start_server(docroot)
    v = get_json(s, "/vars.php", method="POST",
                 files={"field": (None, "value 1"), "list[]": (None, "a"), "other": (None, "\u00e9t\u00e9")})
    assert v["post"] == {"field": "value 1", "list": ["a"], "other": "\u00e9t\u00e9"}
    assert v["files"] == []


def test_php_input_json_read_twice_and_getallheaders(start_server, docroot):
    s = start_server(docroot)
    payload = json.dumps({"k": [1, 2, {"x": "\u00e9"}], "s": "str"})
    v = get_json(s, "/vars.php", method="PUT", data=payload.encode(),
                 headers={"Content-Type": "application/json", "X-MiXeD-CaSe": "kept", "X-Dup": "1"})
    assert v["method"] == "PUT"
    assert v["input1"] == payload and v["input2"] == payload
    assert v["json"] == json.loads(payload)
    assert v["post"] == []
    h = v["headers"]
    assert h["X-MiXeD-CaSe"] == "kept"
    assert h["Content-Type"] == "application/json"
    assert h["Content-Length"] == str(len(payload.encode()))
    assert h["Host"] == "127.0.0.1:%d" % s.port


def test_chunked_request_body_reaches_php(start_server, docroot):
    s = start_server(docroot)
    body = b"a=1&b=two+words&c[]=x"
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:5], body[5:])) + b"0\r\n\r\n"
    req = (b"POST /vars.php HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked)
    status, _, out, _ = raw_exchange(s.port, req)
    assert status.split()[1] == "200", out
    v = json.loads(out)
    assert v["post"] == {"a": "1", "b": "two words", "c": ["x"]}
    assert v["input1"] == body.decode()
    status, _, out, _ = raw_exchange(s.port, req.replace(b"/vars.php", b"/server.php"))
    assert json.loads(out)["CONTENT_LENGTH"] == str(len(body))


def test_post_over_post_max_size(start_server, docroot):
    s = start_server(docroot, "-d", "post_max_size=1K")
    v = get_json(s, "/vars.php", method="POST", data={"x": "a" * 2000})
    assert v["post"] == []
    assert s.wait_log(r"POST Content-Length of 2002 bytes exceeds the limit of 1024 bytes", timeout=2), s.log()


# ---- 3. uploads -------------------------------------------------------------------------------


def test_upload_two_files_move_and_cleanup(start_server, docroot, tmp_path):
    s = start_server(docroot)
    dest = tmp_path / "dest"
    dest.mkdir()
    binary = bytes(range(256)) * 40
    v = get_json(s, "/upload.php?dest=" + str(dest), method="POST",
                 data={"note": "hi"},
                 files={"f1": ("a.txt", b"hello upload\n", "text/plain"),
                        "f2": ("b.bin", binary, "application/octet-stream")})
    f = v["files"]
    assert f["f1"]["name"] == "a.txt" and f["f1"]["type"] == "text/plain"
    assert f["f1"]["size"] == 13 and f["f1"]["error"] == 0
    assert f["f2"]["name"] == "b.bin" and f["f2"]["size"] == len(binary) and f["f2"]["error"] == 0
    for field in ("f1", "f2"):
        r = v["report"][field]
        assert r["existed"] and r["is_uploaded"] and r["moved"]
        assert r["exists_after_move"] is False
    assert v["passwd_is_uploaded"] is False and v["passwd_moved"] is False
    assert (dest / "a.txt").read_bytes() == b"hello upload\n"
    assert (dest / "b.bin").read_bytes() == binary
    assert not (dest / "passwd").exists()

    # An upload the script does not move is deleted when the request ends.
    r = requests.post(s.url("/upload_keep.php"), files={"f": ("k.txt", b"keep me?", "text/plain")}, timeout=10)
    assert r.status_code == 200
    k = r.json()
    assert k["error"] == 0 and k["existed"] is True and k["tmp_name"]
    r = requests.get(s.url("/exists.php"), params={"f": k["tmp_name"]}, timeout=10)
    assert r.text == "no"
    assert not os.path.exists(k["tmp_name"])


def test_upload_over_upload_max_filesize(start_server, docroot):
    s = start_server(docroot, "-d", "upload_max_filesize=1K")
    v = get_json(s, "/upload.php", method="POST",
                 files={"big": ("big.bin", b"x" * 2000, "application/octet-stream"),
                        "small": ("small.txt", b"ok", "text/plain")})
    big = v["files"]["big"]
    assert big["error"] == 1  # UPLOAD_ERR_INI_SIZE
    assert big["size"] == 0 and big["tmp_name"] == ""
    assert v["files"]["small"]["error"] == 0 and v["files"]["small"]["size"] == 2


# ---- 4. headers and status --------------------------------------------------------------------


def req_line(path, method="GET", extra=b""):
    return (method.encode() + b" " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + extra
            + b"Connection: close\r\n\r\n")


def test_header_replace_and_add(start_server, docroot):
    s = start_server(docroot)
    status, headers, body, _ = raw_exchange(s.port, req_line("/headers.php?case=custom"))
    assert status == "HTTP/1.1 200 OK"
    assert body == b"custom"
    assert all_values(headers, "X-Custom") == ["hello"]
    assert all_values(headers, "Content-Type") == ["text/x-custom; charset=utf-8"]
    assert all_values(headers, "X-B") == ["2"]
    assert all_values(headers, "X-A") == ["1", "2"]
    assert all_values(headers, "Content-Length") == ["6"]


def test_setcookie_attributes(start_server, docroot):
    s = start_server(docroot)
    status, headers, body, _ = raw_exchange(s.port, req_line("/headers.php?case=cookies"))
    cookies = all_values(headers, "Set-Cookie")
    assert len(cookies) == 3, cookies
    assert cookies[0] == "plain=v1"
    full = cookies[1]
    assert full.startswith("full=a%20b%26c; ")
    attrs = [a.strip() for a in full.split(";")[1:]]
    assert "expires=Wed, 18 May 2033 03:33:20 GMT" in attrs
    assert any(a.startswith("Max-Age=") for a in attrs)
    assert "path=/p" in attrs and "domain=example.test" in attrs
    assert "secure" in attrs and "HttpOnly" in attrs and "SameSite=Strict" in attrs
    assert cookies[2] == "raw=x%20y"


@pytest.mark.parametrize("code,reason", [
    (201, "Created"), (404, "Not Found"),
    (418, "I'm a teapot"), (599, ""),
])
def test_http_response_code(start_server, docroot, code, reason):
    s = start_server(docroot)
    status, headers, body, _ = raw_exchange(s.port, req_line("/headers.php?case=code&code=%d" % code))
    # nginx sends no reason phrase for a code it does not know; a made-up
    # one ("Unknown") is wrong.
    assert status in ("HTTP/1.1 %d %s" % (code, reason), "HTTP/1.1 %d" % code, "HTTP/1.1 %d " % code)
    assert body == b"code %d" % code
    assert all_values(headers, "Content-Type") == ["text/html; charset=UTF-8"]  # PHP's default


def test_location_redirects(start_server, docroot):
    s = start_server(docroot)
    r = requests.get(s.url("/headers.php?case=location"), allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"] == "/x"
    r = requests.post(s.url("/headers.php?case=location"), data={"a": "b"}, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"] == "/x"
    r = requests.get(s.url("/headers.php?case=location301"), allow_redirects=False, timeout=10)
    assert r.status_code == 301 and r.headers["Location"] == "/y"


def test_status_line_header(start_server, docroot):
    s = start_server(docroot)
    status, headers, body, _ = raw_exchange(s.port, req_line("/headers.php?case=statusline"))
    assert status == "HTTP/1.1 404 Not Found" and body == b"nope"
    status, headers, body, _ = raw_exchange(s.port, req_line("/headers.php?case=customreason"))
    assert status == "HTTP/1.1 404 Gone Fishing" and body == b"fishing"
    # 204: PHP's output is dropped, no body framing.
    status, headers, body, _ = raw_exchange(s.port, req_line("/headers.php?case=nocontent"))
    assert status.startswith("HTTP/1.1 204")
    assert body == b"" and not all_values(headers, "Content-Length")
    assert not all_values(headers, "Transfer-Encoding")


def test_headers_sent_after_flush(start_server, docroot):
    s = start_server(docroot)
    status, headers, body, _ = raw_exchange(s.port, req_line("/headers.php?case=sent"))
    assert status == "HTTP/1.1 200 OK"
    assert all_values(headers, "X-Early") == ["1"]
    assert not all_values(headers, "X-Late")
    assert all_values(headers, "Transfer-Encoding") == ["chunked"]
    assert body.startswith(b"a")
    info = json.loads(body[1:])
    assert info["before"] is False and info["after"] is True
    # The ignored header() is a warning in the log, as under php-fpm.
    assert s.wait_log(r"Cannot modify header information - headers already sent", timeout=2), s.log()


def test_cgi_status_header(start_server, docroot):
    s = start_server(docroot)
    status, headers, body, _ = raw_exchange(s.port, req_line("/headers.php?case=cgistatus"))
    assert status.split()[1] == "404", status
    assert body == b"cgi"
    assert not all_values(headers, "Status")


def test_head_request_to_php(start_server, docroot):
    s = start_server(docroot)
    status, headers, body, _ = raw_exchange(s.port, req_line("/headers.php?case=custom", method="HEAD"))
    assert status == "HTTP/1.1 200 OK"
    assert body == b""
    assert all_values(headers, "X-Custom") == ["hello"] and all_values(headers, "X-A") == ["1", "2"]
    # Content-Length, when sent, must be what a GET would get (6), not 0.
    assert all_values(headers, "Content-Length") in ([], ["6"]), headers


def test_large_output_is_complete(start_server, docroot):
    s = start_server(docroot)
    n = 3 * 1024 * 1024 + 17
    expected = b"".join(b"%08d\n" % i for i in range(n // 9 + 1))[:n]
    r = requests.get(s.url("/big.php"), params={"n": n}, timeout=20)
    assert r.status_code == 200
    assert len(r.content) == n and r.content == expected
    # HTTP/1.0 client: no chunked framing, the whole body until close.
    data = raw_request(s.port, b"GET /big.php?n=%d HTTP/1.0\r\nHost: t\r\n\r\n" % n, timeout=10)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower()
    assert body == expected


def test_zlib_output_compression(start_server, docroot):
    s = start_server(docroot, "-d", "zlib.output_compression=On")
    n = 50000
    expected = b"".join(b"%08d\n" % i for i in range(n // 9 + 1))[:n]
    r = requests.get(s.url("/big.php"), params={"n": n}, headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    assert int(r.headers.get("Content-Length", n)) < n or r.headers.get("Transfer-Encoding") == "chunked"
    assert r.content == expected  # requests decompresses
    r = requests.get(s.url("/big.php"), params={"n": n}, headers={"Accept-Encoding": "identity"}, timeout=10)
    assert "Content-Encoding" not in r.headers and r.content == expected


# ---- 5. flush() streams ------------------------------------------------------------------------


def test_flush_streams_chunked(start_server, docroot):
    s = start_server(docroot)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    try:
        t0 = time.time()
        sock.sendall(req_line("/stream.php"))
        buf = b""
        t_first = None
        while not buf.endswith(b"0\r\n\r\n"):
            b = sock.recv(65536)
            if not b:
                break
            buf += b
            if t_first is None and b"first" in buf:
                t_first = time.time() - t0
        total = time.time() - t0
    finally:
        sock.close()
    assert t_first is not None and t_first < 0.4, (t_first, buf)
    assert total >= 0.5
    assert b"second" in buf
    head = buf.partition(b"\r\n\r\n")[0].lower()
    assert b"\r\ntransfer-encoding: chunked" in head
    assert b"content-length" not in head
    resp = parse_responses(buf)
    assert resp[0][0] == 200 and resp[0][2] == b"firstsecond"


def test_flush_streams_on_http10_until_close(start_server, docroot):
    s = start_server(docroot)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    try:
        t0 = time.time()
        sock.sendall(b"GET /stream.php HTTP/1.0\r\nHost: t\r\n\r\n")
        buf = b""
        t_first = None
        while True:
            b = sock.recv(65536)
            if not b:
                break
            buf += b
            if t_first is None and b"first" in buf:
                t_first = time.time() - t0
    finally:
        sock.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    assert t_first is not None and t_first < 0.4
    assert b"chunked" not in head.lower() and b"content-length" not in head.lower()
    assert body == b"firstsecond"


# ---- 6. fastcgi_finish_request() -----------------------------------------------------------------


def test_fastcgi_finish_request(start_server, docroot, tmp_path):
    s = start_server(docroot)
    marker = tmp_path / "marker"
    t0 = time.time()
    r = requests.get(s.url("/finish.php"), params={"marker": str(marker)}, timeout=10)
    elapsed = time.time() - t0
    assert r.status_code == 200 and r.text == "done"
    assert elapsed < 0.25, elapsed
    assert not marker.exists()
    deadline = time.time() + 5
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.02)
    assert marker.exists()
    assert time.time() - t0 >= 0.3
    # The worker is free again afterwards.
    assert requests.get(s.url("/sapi.php"), timeout=10).status_code == 200


@pytest.mark.skipif(TEST_MODE == "direct", reason="direct mode: the worker that owns the connection is still "
                    "running the script, so the next request on it waits (docs/modes.md)")
def test_fastcgi_finish_request_keep_alive(start_server, docroot, tmp_path):
    # The connection is ready for the next request while the script runs on.
    s = start_server(docroot, workers=2)
    marker = tmp_path / "marker"
    with requests.Session() as http:
        t0 = time.time()
        r = http.get(s.url("/finish.php"), params={"marker": str(marker)}, timeout=10)
        assert r.status_code == 200 and r.text == "done"
        r = http.get(s.url("/sapi.php"), timeout=10)
        assert r.status_code == 200 and r.text.startswith("fpm-fcgi|")
        assert time.time() - t0 < 0.25
        assert not marker.exists()
    assert _wait_file(marker) is not None


# ---- 7. client aborts ------------------------------------------------------------------------------


def _disconnect_after_first_tick(port, path):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(req_line(path))
    buf = b""
    while b"tick 0" not in buf:
        b = sock.recv(4096)
        assert b, buf
        buf += b
    sock.close()


def _wait_file(p, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.exists() and p.stat().st_size > 0:
            return p.read_text()
        time.sleep(0.02)
    return None


def test_connection_aborted_with_ignore_user_abort(start_server, docroot, tmp_path):
    s = start_server(docroot)
    out = tmp_path / "abort"
    t0 = time.time()
    _disconnect_after_first_tick(s.port, "/abort.php?ignore=1&out=" + str(out))
    text = _wait_file(out)
    assert text is not None, s.log()
    aborted, ticks = text.split()
    assert aborted == "1"
    # Noticed soon after the disconnect, not at the 3 s deadline.
    assert time.time() - t0 < 2.5
    assert _wait_file(tmp_path / "abort.shutdown") == "1"  # CONNECTION_ABORTED
    assert requests.get(s.url("/sapi.php"), timeout=10).status_code == 200


def test_client_abort_stops_script_without_ignore_user_abort(start_server, docroot, tmp_path):
    s = start_server(docroot)
    out = tmp_path / "abort"
    _disconnect_after_first_tick(s.port, "/abort.php?ignore=0&out=" + str(out))
    # The script is stopped at the next output: shutdown functions still run.
    assert _wait_file(tmp_path / "abort.shutdown", timeout=2.5) == "1"
    assert not out.exists()
    assert requests.get(s.url("/sapi.php"), timeout=10).status_code == 200


# ---- 8. limits and errors ------------------------------------------------------------------------


def test_max_execution_time(start_server, docroot):
    s = start_server(docroot, workers=1)
    pid = requests.get(s.url("/pid.php"), timeout=10).text
    t0 = time.time()
    r = requests.get(s.url("/busy.php"), timeout=20)
    assert r.status_code == 504
    assert time.time() - t0 < 5
    assert s.wait_log(r"Maximum execution time of 1 second exceeded", timeout=2), s.log()
    assert "Maximum execution time" not in r.text  # display_errors = Off
    # The same worker goes on serving.
    r = requests.get(s.url("/pid.php"), timeout=10)
    assert r.status_code == 200 and r.text == pid


def test_max_execution_time_does_not_count_sleep(start_server, docroot):
    s = start_server(docroot, workers=1)
    r = requests.get(s.url("/sleep.php"), params={"us": 1200000}, timeout=10)
    assert r.status_code == 200 and r.text == "slept"
    assert "Maximum execution time" not in s.log()


def test_memory_limit(start_server, docroot):
    s = start_server(docroot, "-d", "memory_limit=16M", workers=1)
    pid = requests.get(s.url("/pid.php"), timeout=10).text
    r = requests.get(s.url("/memory.php"), timeout=20)
    assert r.status_code == 500
    assert s.wait_log(r"Allowed memory size of 16777216 bytes exhausted", timeout=2), s.log()
    r = requests.get(s.url("/pid.php"), timeout=10)
    assert r.status_code == 200 and r.text == pid


def test_fatal_error_and_uncaught_exception(start_server, docroot):
    s = start_server(docroot, workers=1)
    r = requests.get(s.url("/fatal.php"), timeout=10)
    assert r.status_code == 500
    assert s.wait_log(r"Call to undefined function this_function_does_not_exist_tusk\(\)", timeout=2), s.log()
    assert "this_function_does_not_exist_tusk" not in r.text
    r = requests.get(s.url("/exception.php"), timeout=10)
    assert r.status_code == 500
    assert s.wait_log(r"Uncaught RuntimeException: tusk test exception", timeout=2), s.log()
    assert "tusk test exception" not in r.text
    r = requests.get(s.url("/sapi.php"), timeout=10)
    assert r.status_code == 200 and r.text.startswith("fpm-fcgi|")


def test_error_log_setting_sends_errors_to_a_file(start_server, docroot, tmp_path):
    log = tmp_path / "php_errors.log"
    s = start_server(docroot, "-d", "error_log=" + str(log), "-d", "date.timezone=UTC", workers=1)
    r = requests.get(s.url("/fatal.php"), timeout=10)
    assert r.status_code == 500
    text = _wait_file(log, timeout=2)
    assert text is not None and "PHP Fatal error:  Uncaught Error: Call to undefined function" in text
    assert "this_function_does_not_exist_tusk" not in s.log()


# ---- 9. sessions -----------------------------------------------------------------------------------


def test_session_files_handler(start_server, docroot, tmp_path):
    sessdir = tmp_path / "sessions"
    sessdir.mkdir()
    s = start_server(docroot, "-d", "session.save_path=" + str(sessdir))
    a = requests.Session()
    first = a.get(s.url("/session.php"), timeout=10)
    assert first.status_code == 200
    set_cookie = first.headers.get("Set-Cookie", "")
    assert set_cookie.startswith("PHPSESSID=") and "path=/" in set_cookie
    assert first.json()["n"] == 1 and first.json()["save_path"] == str(sessdir)
    sid = first.json()["id"]
    assert a.get(s.url("/session.php"), timeout=10).json() == dict(first.json(), n=2)
    assert a.get(s.url("/session.php"), timeout=10).json()["n"] == 3
    assert (sessdir / ("sess_" + sid)).exists()
    assert "i:3;" in (sessdir / ("sess_" + sid)).read_text()
    b = requests.Session()
    other = b.get(s.url("/session.php"), timeout=10).json()
    assert other["n"] == 1 and other["id"] != sid
    assert a.get(s.url("/session.php"), timeout=10).json()["n"] == 4


# ---- 10. php.ini ------------------------------------------------------------------------------------


def test_default_ini_is_the_system_embed_ini(start_server, docroot):
    s = start_server(docroot)
    v = get_json(s, "/ini.php")
    assert v["loaded_file"] == SYSTEM_INI
    assert v["output_buffering"] == "4096"  # set in the system php.ini
    assert v["mbstring"] is True and v["mb_strlen"] == 5  # conf.d/20-mbstring.ini
    assert v["opcache_enabled"] is True  # conf.d/10-opcache.ini
    assert v["precision"] == "14"


def test_dash_d_overrides(start_server, docroot):
    s = start_server(docroot, "-d", "precision=5", "-d", "upload_max_filesize=3M")
    v = get_json(s, "/ini.php")
    assert v["precision"] == "5" and v["third"] == "0.33333"
    assert v["upload_max_filesize"] == "3M"
    assert v["loaded_file"] == SYSTEM_INI


def test_php_ini_replaces_system_ini(start_server, docroot, tmp_path):
    ini = tmp_path / "custom.ini"
    ini.write_text("date.timezone=Pacific/Auckland\nprecision=7\n")
    s = start_server(docroot, "--php-ini", str(ini))
    v = get_json(s, "/ini.php")
    assert v["timezone"] == "Pacific/Auckland"
    assert v["precision"] == "7"
    assert v["loaded_file"] == str(ini)
    assert v["output_buffering"] == "0"  # the system php.ini was not read


# ---- 11. front controller ---------------------------------------------------------------------------


def test_front_controller_default_index_php(start_server, front_root):
    s = start_server(front_root)
    v = get_json(s, "/some/route?x=1")
    assert v["script"] == "index.php"
    assert v["uri"] == "/some/route?x=1"
    assert v["script_name"] == "/index.php"
    assert v["script_filename"] == os.path.join(front_root, "index.php")
    assert v["php_self"] == "/index.php"
    assert v["get"] == {"x": "1"}
    assert get_json(s, "/")["script"] == "index.php"
    r = requests.get(s.url("/static.txt"), timeout=10)
    assert r.status_code == 200 and r.text == "static file, not PHP <?php echo 1; ?>\n"
    assert r.headers["Content-Type"].startswith("text/plain")


def test_front_controller_option(start_server, front_root):
    s = start_server(front_root, "--front-controller", "app.php")
    v = get_json(s, "/some/route?x=1")
    assert v["script"] == "app.php" and v["script_name"] == "/app.php" and v["uri"] == "/some/route?x=1"
    assert get_json(s, "/index.php")["script"] == "index.php"
    r = requests.get(s.url("/static.txt"), timeout=10)
    assert r.status_code == 200 and r.text.startswith("static file")


def test_front_controller_off(start_server, front_root):
    s = start_server(front_root, "--front-controller", "off")
    r = requests.get(s.url("/some/route?x=1"), timeout=10)
    assert r.status_code == 404
    assert get_json(s, "/index.php")["script"] == "index.php"
    r = requests.get(s.url("/static.txt"), timeout=10)
    assert r.status_code == 200 and r.text.startswith("static file")


# ---- 12. SAPI name ------------------------------------------------------------------------------------


def test_sapi_name(start_server, docroot):
    s = start_server(docroot)
    r = requests.get(s.url("/sapi.php"), timeout=10)
    assert r.status_code == 200
    name, const, version = r.text.split("|")
    assert name == "fpm-fcgi" and const == "fpm-fcgi"
    assert version.startswith("8.2.")
