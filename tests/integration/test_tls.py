"""HTTPS on its own listener: ALPN (h2 / http/1.1), SNI, protocol versions,
PHP's view of TLS, hostile clients, --tls-redirect, SIGHUP reload, session
resumption, large files, 'tusk cert' and bad configuration."""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import TEST_MODE, TUSK_BIN, parse_responses, raw_request

LOCAL_CERT = "localhost.pem"
LOCAL_KEY = "localhost-key.pem"


def make_cert(d, *names):
    os.makedirs(d, exist_ok=True)
    out = subprocess.run([TUSK_BIN, "cert", d] + list(names), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr + out.stdout
    return os.path.join(d, LOCAL_CERT), os.path.join(d, LOCAL_KEY), out.stdout + out.stderr


def cert_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


@pytest.fixture
def certs(tmp_path):
    """Two certificates: 'a' for localhost, 'b' for localhost + other.test."""
    a = make_cert(str(tmp_path / "a"))
    b = make_cert(str(tmp_path / "b"), "other.test")
    return {"a": a, "b": b}


@pytest.fixture
def docroot(tmp_path, php_case):
    d = tmp_path / "www"
    shutil.copytree(php_case("tls"), str(d))
    return str(d)


def tls_port(server, timeout=10):
    assert server.wait_log(r"HTTPS on https://127\.0\.0\.1:\d+", timeout), server.log()
    port = int(re.search(r"HTTPS on https://127\.0\.0\.1:(\d+)", server.log()).group(1))
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.02)
    server.tls_port = port
    return port


def start_tls(start_server, docroot, pairs, *args, workers=2, env=None):
    cert = ",".join(p[0] for p in pairs)
    key = ",".join(p[1] for p in pairs)
    s = start_server(docroot, "--tls-cert", cert, "--tls-key", key, "--tls-listen", "127.0.0.1:0", *args,
                     workers=workers, env=env)
    tls_port(s)
    return s


def curl(port, path, cacert, *args, host="localhost"):
    """Runs curl against https://HOST:PORT/path (HOST resolved to 127.0.0.1);
    returns (http_version, status, body bytes)."""
    cmd = ["curl", "-sS", "--max-time", "20", "--cacert", cacert, "--resolve", "%s:%d:127.0.0.1" % (host, port),
           "-w", "\n%{http_version} %{http_code}"] + list(args) + ["https://%s:%d%s" % (host, port, path)]
    out = subprocess.run(cmd, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode()
    body, _, tail = out.stdout.rpartition(b"\n")
    ver, code = tail.decode().split()
    return ver, int(code), body


def client_ctx(cafile=None, **kw):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def tls_connect(port, ctx, sni="localhost", session=None, timeout=5):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname=sni, session=session)


def h1_exchange(sock, path="/hello.php", host="localhost", keep_alive=True):
    req = "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, host, "" if keep_alive else "Connection: close\r\n")
    sock.sendall(req.encode())
    data = b""
    deadline = time.time() + 5
    while time.time() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        r = parse_responses(data)
        if r and ("content-length" not in r[0][1] or len(r[0][2]) == int(r[0][1]["content-length"])):
            if keep_alive:
                return r[0]
    r = parse_responses(data)
    assert r, data
    return r[0]


# --------------------------------------------------------------------------- basics


def test_https_get_h1(start_server, docroot, certs):
    s = start_tls(start_server, docroot, [certs["a"]])
    ver, code, body = curl(s.tls_port, "/info.php?x=1", certs["a"][0], "--http1.1")
    assert (ver, code) == ("1.1", 200)
    info = json.loads(body)
    assert info["HTTPS"] == "on"
    assert info["SSL_PROTOCOL"] == "TLSv1.3"
    assert info["REQUEST_SCHEME"] == "https"
    assert info["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert info["SSL_CIPHER"]
    # the plain listener still answers plain HTTP without HTTPS=on
    r = parse_responses(raw_request(s.port, b"GET /info.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert r[0][0] == 200
    plain = json.loads(r[0][2])
    assert plain["HTTPS"] in (None, "", "off")
    assert plain["REQUEST_SCHEME"] == "http"


def test_https_get_h2(start_server, docroot, certs):
    s = start_tls(start_server, docroot, [certs["a"]])
    ver, code, body = curl(s.tls_port, "/info.php", certs["a"][0], "--http2")
    assert (ver, code) == ("2", 200)
    info = json.loads(body)
    assert info["HTTPS"] == "on"
    assert info["SERVER_PROTOCOL"] == "HTTP/2.0"
    assert info["REQUEST_SCHEME"] == "https"
    assert info["SSL_PROTOCOL"] == "TLSv1.3"


@pytest.mark.parametrize("mode", ["--http1.1", "--http2"])
def test_https_post(start_server, docroot, certs, mode):
    s = start_tls(start_server, docroot, [certs["a"]])
    ver, code, body = curl(s.tls_port, "/info.php", certs["a"][0], mode, "--data", "a=1&b=two")
    assert code == 200
    assert ver == ("2" if mode == "--http2" else "1.1")
    info = json.loads(body)
    assert info["REQUEST_METHOD"] == "POST"
    assert info["post"] == {"a": "1", "b": "two"}
    # a raw body larger than one TLS record
    payload = "z" * 100000
    ver, code, body = curl(s.tls_port, "/info.php", certs["a"][0], mode, "--data-binary", payload,
                           "-H", "Content-Type: application/octet-stream")
    assert code == 200
    assert json.loads(body)["body"] == payload


def test_alpn_selection(start_server, docroot, certs):
    s = start_tls(start_server, docroot, [certs["a"]])
    ctx = client_ctx(certs["a"][0])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with tls_connect(s.tls_port, ctx) as c:
        assert c.selected_alpn_protocol() == "h2"
    ctx = client_ctx(certs["a"][0])
    ctx.set_alpn_protocols(["http/1.1"])
    with tls_connect(s.tls_port, ctx) as c:
        assert c.selected_alpn_protocol() == "http/1.1"
        status, _, body = h1_exchange(c)
        assert (status, body) == (200, b"hello tls")
    # no ALPN at all: HTTP/1.1
    with tls_connect(s.tls_port, client_ctx(certs["a"][0])) as c:
        assert c.selected_alpn_protocol() is None
        status, _, body = h1_exchange(c)
        assert (status, body) == (200, b"hello tls")


def test_alpn_without_h2(start_server, docroot, certs):
    s = start_tls(start_server, docroot, [certs["a"]], "--h2=0")
    ctx = client_ctx(certs["a"][0])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with tls_connect(s.tls_port, ctx) as c:
        assert c.selected_alpn_protocol() == "http/1.1"


def test_forced_tls12(start_server, docroot, certs):
    s = start_tls(start_server, docroot, [certs["a"]])
    ver, code, body = curl(s.tls_port, "/info.php", certs["a"][0], "--http1.1", "--tlsv1.2", "--tls-max", "1.2")
    assert code == 200
    assert json.loads(body)["SSL_PROTOCOL"] == "TLSv1.2"
    ver, code, body = curl(s.tls_port, "/info.php", certs["a"][0], "--http2", "--tlsv1.2", "--tls-max", "1.2")
    assert (ver, code) == ("2", 200)
    assert json.loads(body)["SSL_PROTOCOL"] == "TLSv1.2"


# --------------------------------------------------------------------------- SNI


def test_sni_selects_certificate(start_server, docroot, certs):
    s = start_tls(start_server, docroot, [certs["a"], certs["b"]])
    der_a, der_b = cert_der(certs["a"][0]), cert_der(certs["b"][0])
    assert der_a != der_b
    with tls_connect(s.tls_port, client_ctx(), sni="other.test") as c:
        assert c.getpeercert(binary_form=True) == der_b
    with tls_connect(s.tls_port, client_ctx(), sni="localhost") as c:
        assert c.getpeercert(binary_form=True) == der_a
    # curl verifies the name against the chosen certificate
    ver, code, body = curl(s.tls_port, "/hello.php", certs["b"][0], host="other.test")
    assert (code, body) == (200, b"hello tls")
    # openssl s_client: subject alternative names of the served certificate
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % s.tls_port, "-servername", "other.test",
                          "-showcerts"], input=b"", capture_output=True, timeout=20)
    pem = re.search(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out.stdout, re.S).group(0)
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=pem,
                          capture_output=True, timeout=20).stdout
    assert b"DNS:other.test" in text


def test_sni_unknown_name_gets_default(start_server, docroot, certs):
    s = start_tls(start_server, docroot, [certs["a"], certs["b"]])
    with tls_connect(s.tls_port, client_ctx(), sni="nobody.invalid") as c:
        assert c.getpeercert(binary_form=True) == cert_der(certs["a"][0])


# --------------------------------------------------------------------------- hostile clients


def test_tls11_client_refused(start_server, docroot, certs):
    s = start_tls(start_server, docroot, [certs["a"]])
    ctx = client_ctx()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises(ssl.SSLError) as ei:
        with tls_connect(s.tls_port, ctx) as c:
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            c.recv(100)
    # Refused by the server, not the client's own OpenSSL unable to offer TLS 1.1.
    assert "NO_PROTOCOLS_AVAILABLE" not in str(ei.value), ei.value
    ver, code, body = curl(s.tls_port, "/hello.php", certs["a"][0])
    assert (code, body) == (200, b"hello tls")


@pytest.mark.parametrize("junk", [b"\x00\x01garbage\xff" * 50, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
                         ids=["garbage", "plain-http"])
def test_junk_on_tls_port_closed_quickly(start_server, docroot, certs, junk):
    s = start_tls(start_server, docroot, [certs["a"]], workers=1)
    t0 = time.time()
    sock = socket.create_connection(("127.0.0.1", s.tls_port), timeout=5)
    sock.sendall(junk)
    data = b""
    closed = False
    while time.time() - t0 < 5:
        try:
            b = sock.recv(4096)
        except ConnectionResetError:
            closed = True
            break
        if not b:
            closed = True
            break
        data += b
    sock.close()
    assert closed, "connection not closed after %r" % data
    assert time.time() - t0 < 3
    assert b"200 OK" not in data
    ver, code, body = curl(s.tls_port, "/hello.php", certs["a"][0])
    assert (code, body) == (200, b"hello tls")


def client_hello():
    ctx = client_ctx()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def test_truncated_handshake(start_server, docroot, certs):
    s = start_tls(start_server, docroot, [certs["a"]], workers=1)
    hello = client_hello()
    assert len(hello) > 100 and hello[0] == 0x16
    # half a ClientHello, then close
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", s.tls_port), timeout=5)
        sock.sendall(hello[: len(hello) // 2])
        sock.close()
    # half a ClientHello left hanging must not block other clients
    stuck = socket.create_connection(("127.0.0.1", s.tls_port), timeout=5)
    stuck.sendall(hello[: len(hello) // 2])
    try:
        for _ in range(3):
            ver, code, body = curl(s.tls_port, "/hello.php", certs["a"][0])
            assert (code, body) == (200, b"hello tls")
    finally:
        stuck.close()
    assert s.proc.poll() is None


# --------------------------------------------------------------------------- redirect


def test_tls_redirect(start_server, docroot, certs):
    s = start_tls(start_server, docroot, [certs["a"]], "--tls-redirect")
    r = parse_responses(raw_request(
        s.port, b"GET /some/path.php?a=1&b=2 HTTP/1.1\r\nHost: example.test:%d\r\nConnection: close\r\n\r\n" % s.port))
    status, headers, _ = r[0]
    assert status == 308
    assert headers["location"] == "https://example.test:%d/some/path.php?a=1&b=2" % s.tls_port
    # POST is redirected too (308 keeps the method)
    r = parse_responses(raw_request(
        s.port, b"POST /p HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"))
    assert r[0][0] == 308
    assert r[0][1]["location"] == "https://localhost:%d/p" % s.tls_port
    # and HTTPS itself is served normally
    ver, code, body = curl(s.tls_port, "/hello.php", certs["a"][0])
    assert (code, body) == (200, b"hello tls")


def test_no_redirect_without_flag(start_server, docroot, certs):
    s = start_tls(start_server, docroot, [certs["a"]])
    r = parse_responses(raw_request(s.port, b"GET /hello.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert (r[0][0], r[0][2]) == (200, b"hello tls")


# --------------------------------------------------------------------------- reload


def test_sighup_reloads_certificate(start_server, docroot, tmp_path):
    live = str(tmp_path / "live")
    cert, key, _ = make_cert(live)
    old_der = cert_der(cert)
    s = start_tls(start_server, docroot, [(cert, key)])
    ctx = client_ctx()
    ctx.set_alpn_protocols(["http/1.1"])
    kept = tls_connect(s.tls_port, ctx)
    assert h1_exchange(kept)[0] == 200
    new_cert, new_key, _ = make_cert(str(tmp_path / "new"))
    new_der = cert_der(new_cert)
    assert new_der != old_der
    shutil.copy(new_cert, cert)
    shutil.copy(new_key, key)
    s.send_signal(signal.SIGHUP)
    deadline = time.time() + 15
    seen = None
    while time.time() < deadline:
        with tls_connect(s.tls_port, client_ctx()) as c:
            seen = c.getpeercert(binary_form=True)
        if seen == new_der:
            break
        time.sleep(0.1)
    assert seen == new_der, "new connections still get the old certificate"
    # several new connections (possibly other processes) agree
    for _ in range(4):
        with tls_connect(s.tls_port, client_ctx()) as c:
            assert c.getpeercert(binary_form=True) == new_der
    # the connection opened before the reload keeps working (pooled mode: the
    # master owns it). In direct mode the worker owning it is replaced by the
    # reload and closes its idle keep-alive connections: a clean close, not garbage.
    if TEST_MODE == "direct":
        kept.sendall(b"GET /hello.php HTTP/1.1\r\nHost: localhost\r\n\r\n")
        try:
            data = kept.recv(65536)
        except (ssl.SSLError, OSError):
            data = b""
        assert data == b"" or data.startswith(b"HTTP/1.1 200"), data
    else:
        status, _, body = h1_exchange(kept)
        assert (status, body) == (200, b"hello tls")
    assert kept.getpeercert(binary_form=True) == old_der
    kept.close()
    ver, code, body = curl(s.tls_port, "/hello.php", new_cert)
    assert (code, body) == (200, b"hello tls")


# --------------------------------------------------------------------------- sessions


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_session_resumption(start_server, docroot, certs, version):
    s = start_tls(start_server, docroot, [certs["a"]])
    v = getattr(ssl.TLSVersion, version)
    ctx = client_ctx(certs["a"][0], minimum_version=v, maximum_version=v)
    reused = []
    tickets = []
    session = None
    for _ in range(4):
        with tls_connect(s.tls_port, ctx, session=session) as c:
            # TLS 1.3 sends its tickets after the handshake: read a response first
            status, _, body = h1_exchange(c, keep_alive=False)
            assert (status, body) == (200, b"hello tls")
            reused.append(c.session_reused)
            tickets.append(c.session.id)
            session = c.session
    assert reused[0] is False
    assert all(reused[1:]), reused
    # Each resumption brings a fresh ticket (a client uses each one once,
    # RFC 8446 C.4), so a chain of resumptions never falls back to a full
    # handshake.
    assert len(set(tickets)) == len(tickets), tickets


# --------------------------------------------------------------------------- large file


@pytest.mark.parametrize("mode", ["--http1.1", "--http2"])
def test_large_static_file(start_server, docroot, certs, mode):
    data = os.urandom(3 * 1024 * 1024 + 123)
    with open(os.path.join(docroot, "big.bin"), "wb") as f:
        f.write(data)
    s = start_tls(start_server, docroot, [certs["a"]], "--compress", "off")
    ver, code, body = curl(s.tls_port, "/big.bin", certs["a"][0], mode)
    assert code == 200
    assert ver == ("2" if mode == "--http2" else "1.1")
    assert len(body) == len(data)
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- tusk cert and bad config


def test_cert_command_output(tmp_path):
    cert, key, text = make_cert(str(tmp_path / "c"))
    assert os.path.exists(cert) and os.path.exists(key)
    assert "Trust" in text or "trust" in text
    assert "--cacert" in text
    assert cert in text
    sub = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True, timeout=20).stdout
    assert "DNS:localhost" in sub
    assert oct(os.stat(key).st_mode & 0o077) == "0o0", "private key readable by others"


def run_tusk(args, timeout=15):
    return subprocess.run([TUSK_BIN, "serve"] + args, capture_output=True, text=True, timeout=timeout)


def test_cert_without_key_is_usage_error(docroot, certs):
    out = run_tusk([docroot, "--listen", "127.0.0.1:0", "--tls-cert", certs["a"][0], "--tls-listen", "127.0.0.1:0"])
    assert out.returncode == 2, out.stderr
    assert "--tls-key" in out.stderr


def test_mismatched_key_fails(docroot, certs):
    cert, key = certs["a"][0], certs["b"][1]
    out = run_tusk([docroot, "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
                    "--tls-listen", "127.0.0.1:0"])
    assert out.returncode not in (0, None)
    assert cert in out.stderr and key in out.stderr, out.stderr
    assert "does not match" in out.stderr


# --------------------------------------------------------------------------- OCSP


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stapled(port, sni="ocsp.example"):
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", sni, "-status"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    if "OCSP Response Status: successful" in out.stdout:
        return True
    assert "OCSP response: no response sent" in out.stdout, out.stdout + out.stderr
    return False


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_ocsp_staple_is_refreshed_in_the_background(start_server, docroot, tmp_path):
    # A certificate whose responder is down at start: served without a
    # staple. Once the responder is up, the periodic refresh (in the
    # background, --tls-ocsp-refresh) staples it, in both process modes.
    d = str(tmp_path / "ca")
    os.makedirs(d)
    port = free_port()
    sh = ("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt "
          "-subj '/CN=Tusk Test CA' -days 2 -addext basicConstraints=critical,CA:TRUE "
          "-addext keyUsage=critical,keyCertSign,cRLSign && "
          "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr "
          "-subj /CN=ocsp.example && "
          "printf 'subjectAltName=DNS:ocsp.example\\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:%d/\\n' >leaf.ext && "
          "openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -set_serial 0x1234 -days 2 "
          "-extfile leaf.ext -out leaf.crt && cat leaf.crt ca.crt >chain.crt && "
          "printf 'V\\t%%s\\t\\t1234\\tunknown\\t/CN=ocsp.example\\n' \"$(date -u -d '+2 days' +%%y%%m%%d%%H%%M%%SZ)\" "
          ">index.txt") % port
    out = subprocess.run(sh, shell=True, cwd=d, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    s = start_tls(start_server, docroot, [(os.path.join(d, "chain.crt"), os.path.join(d, "leaf.key"))],
                  "--tls-ocsp-refresh", "1", env={"no_proxy": "127.0.0.1"})
    assert not stapled(s.tls_port)
    log = open(os.path.join(d, "responder.log"), "w")
    resp = subprocess.Popen(["openssl", "ocsp", "-index", "index.txt", "-port", str(port), "-rsigner", "ca.crt",
                             "-rkey", "ca.key", "-CA", "ca.crt", "-nmin", "10"], cwd=d, stdout=log, stderr=log)
    try:
        deadline = time.time() + 15
        ok = False
        while time.time() < deadline and not ok:
            time.sleep(0.5)
            # Every process serving TLS must have it: ask a few times.
            ok = all(stapled(s.tls_port) for _ in range(4))
        assert ok, s.log()
        assert s.wait_log(r"OCSP: refreshed the staples of 1 certificate", 5), s.log()
    finally:
        resp.kill()
        resp.wait()
        log.close()
