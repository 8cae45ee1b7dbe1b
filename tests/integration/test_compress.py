"""Response compression: negotiation (br / zstd / gzip, q-values), what is not
compressed, PHP's own encodings, streamed output, precompressed siblings,
ETags of encoded variants, --cache-rule, and compression over HTTP/2."""
import http.client
import os
import shutil
import socket
import subprocess
import time
import zlib

import pytest

try:
    import brotli
except ImportError:  # pragma: no cover
    brotli = None


def zstd_decode(data):
    out = subprocess.run(["zstd", "-d", "-c", "-q"], input=data, capture_output=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return out.stdout


def decode(enc, data):
    if enc == "gzip":
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    if enc == "br":
        if brotli is None:
            pytest.skip("python brotli missing")
        return brotli.decompress(data)
    if enc == "zstd":
        if not shutil.which("zstd"):
            pytest.skip("zstd CLI missing")
        return zstd_decode(data)
    raise AssertionError("unknown encoding %r" % enc)


def get(port, path, headers=None, method="GET"):
    """One request on a fresh connection; raw (undecoded) body."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


@pytest.fixture
def docroot(tmp_path, php_case):
    d = tmp_path / "www"
    shutil.copytree(php_case("compress"), str(d))
    return str(d)


def identity(port, path):
    st, h, body = get(port, path, {"Accept-Encoding": "identity"})
    assert st == 200
    assert "content-encoding" not in h
    return body


@pytest.mark.parametrize("enc", ["gzip", "br", "zstd"])
def test_php_response_encoded(start_server, docroot, enc):
    s = start_server(docroot)
    plain = identity(s.port, "/text.php")
    assert len(plain) > 10000
    st, h, body = get(s.port, "/text.php", {"Accept-Encoding": enc})
    assert st == 200
    assert h["content-encoding"] == enc
    assert "accept-encoding" in h.get("vary", "").lower()
    assert len(body) < len(plain) / 3
    assert decode(enc, body) == plain


def test_default_preference_and_identity_vary(start_server, docroot):
    # A browser's Accept-Encoding (all q=1): PHP output, compressed as it is
    # sent, gets zstd (the cheapest of the three for as small a result);
    # a static file, compressed once and cached, gets br (the smallest).
    write(os.path.join(docroot, "b.css"), CSS)
    s = start_server(docroot)
    plain = identity(s.port, "/text.php")
    st, h, body = get(s.port, "/text.php", {"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert h["content-encoding"] == "zstd"
    assert decode("zstd", body) == plain
    st, h, body = get(s.port, "/text.php", {"Accept-Encoding": "gzip, br"})
    assert h["content-encoding"] == "br"
    st, h, body = get(s.port, "/b.css", {"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert h["content-encoding"] == "br"
    st, h, _ = get(s.port, "/text.php", {"Accept-Encoding": "identity"})
    assert "content-encoding" not in h


@pytest.mark.parametrize("ae,expect", [
    ("gzip;q=1, br;q=0.5", "gzip"),
    ("br;q=0.5, gzip;q=0.9", "gzip"),
    ("br;q=0, gzip", "gzip"),
    ("br;q=0", None),
    ("gzip;q=0, br;q=0, zstd;q=0", None),
    ("*;q=0.1, br;q=0", "zstd"),
    ("deflate", None),
])
def test_q_values(start_server, docroot, ae, expect):
    s = start_server(docroot)
    plain = identity(s.port, "/text.php")
    st, h, body = get(s.port, "/text.php", {"Accept-Encoding": ae})
    assert st == 200
    assert h.get("content-encoding") == expect, (ae, h)
    assert (decode(expect, body) if expect else body) == plain


def test_server_order_limited_by_flag(start_server, docroot):
    s = start_server(docroot, "--compress", "gzip")
    st, h, body = get(s.port, "/text.php", {"Accept-Encoding": "br, zstd, gzip"})
    assert h["content-encoding"] == "gzip"
    st, h, body = get(s.port, "/text.php", {"Accept-Encoding": "br"})
    assert "content-encoding" not in h


def test_not_compressed_below_min_size(start_server, docroot):
    s = start_server(docroot)
    st, h, body = get(s.port, "/small.php", {"Accept-Encoding": "gzip, br"})
    assert st == 200 and "content-encoding" not in h
    assert body == b"s" * 100
    s2 = start_server(docroot, "--compress-min-size", "50")
    st, h, body = get(s2.port, "/small.php", {"Accept-Encoding": "gzip"})
    assert h.get("content-encoding") == "gzip"
    assert decode("gzip", body) == b"s" * 100
    s3 = start_server(docroot, "--compress-min-size", "100000")
    st, h, body = get(s3.port, "/text.php", {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in h


def test_not_compressed_for_png(start_server, docroot):
    s = start_server(docroot)
    st, h, body = get(s.port, "/png.php", {"Accept-Encoding": "gzip, br, zstd"})
    assert st == 200
    assert h["content-type"] == "image/png"
    assert "content-encoding" not in h
    assert body == b"PNGDATA " * 2000


def test_head_not_compressed_body(start_server, docroot):
    s = start_server(docroot)
    st, h, body = get(s.port, "/text.php", {"Accept-Encoding": "gzip"}, method="HEAD")
    assert st == 200
    assert body == b""
    # HEAD must not promise an encoding it would not have sent, nor a length of another variant
    if "content-encoding" in h:
        st2, h2, body2 = get(s.port, "/text.php", {"Accept-Encoding": "gzip"})
        assert h2["content-encoding"] == h["content-encoding"]
        if "content-length" in h:
            assert int(h["content-length"]) == len(body2)


def test_range_request_not_encoded(start_server, docroot):
    data = ("static line of text for ranges\n" * 500).encode()
    with open(os.path.join(docroot, "big.txt"), "wb") as f:
        f.write(data)
    s = start_server(docroot)
    st, h, body = get(s.port, "/big.txt", {"Accept-Encoding": "gzip, br", "Range": "bytes=10-99"})
    assert st == 206
    assert "content-encoding" not in h
    assert body == data[10:100]
    assert h["content-range"] == "bytes 10-99/%d" % len(data)
    # without Range the same file is compressed
    st, h, body = get(s.port, "/big.txt", {"Accept-Encoding": "gzip"})
    assert st == 200 and h["content-encoding"] == "gzip"
    assert decode("gzip", body) == data


def test_ob_gzhandler_not_double_compressed(start_server, docroot):
    s = start_server(docroot)
    st, h, body = get(s.port, "/ob.php", {"Accept-Encoding": "gzip"})
    assert st == 200
    assert h["content-encoding"] == "gzip"
    text = decode("gzip", body)
    assert text.startswith(b"ob line 0: the quick brown fox\n")
    assert text.count(b"\n") == 400


def test_zlib_output_compression_not_double_compressed(start_server, docroot):
    s = start_server(docroot, "-d", "zlib.output_compression=On")
    st, h, body = get(s.port, "/text.php", {"Accept-Encoding": "gzip"})
    assert st == 200
    assert h["content-encoding"] == "gzip"
    text = decode("gzip", body)
    assert text.startswith(b"line 0: the quick brown fox")
    assert text.count(b"\n") == 400


def test_compress_off(start_server, docroot):
    s = start_server(docroot, "--compress", "off")
    plain = identity(s.port, "/text.php")
    st, h, body = get(s.port, "/text.php", {"Accept-Encoding": "gzip, br, zstd"})
    assert "content-encoding" not in h
    assert body == plain


def test_streamed_output_decodable_as_it_arrives(start_server, docroot):
    s = start_server(docroot)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    t0 = time.time()
    sock.sendall(b"GET /stream.php HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(65536)
        assert b, buf
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    hl = head.decode().lower()
    assert "content-encoding: gzip" in hl, hl
    assert "transfer-encoding: chunked" in hl, hl
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    text = b""
    first_at = None
    pending = rest
    done = False
    while not done:
        # take complete chunks out of pending
        while True:
            line, sep, after = pending.partition(b"\r\n")
            if not sep:
                break
            size = int(line.split(b";")[0], 16)
            if size == 0:
                done = True
                break
            if len(after) < size + 2:
                break
            text += d.decompress(after[:size])
            pending = after[size + 2:]
            if first_at is None and b"first piece" in text:
                first_at = time.time() - t0
        if done:
            break
        b = sock.recv(65536)
        if not b:
            break
        pending += b
    text += d.flush()
    sock.close()
    assert first_at is not None and first_at < 1.2, "first piece arrived after %s s" % first_at
    assert text == b"first piece " + b"a" * 2000 + b"\nsecond piece " + b"b" * 2000 + b"\n"


# --------------------------------------------------------------------------- static files


def write(path, data, mtime=None):
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


CSS = (".rule { color: red; margin: 0 auto; padding: 1px }\n" * 300).encode()


def test_precompressed_siblings(start_server, docroot):
    now = time.time()
    css = os.path.join(docroot, "a.css")
    write(css, CSS, now - 100)
    br_bytes = brotli.compress(CSS) if brotli else b"BR-SIBLING"
    gz_bytes = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS).compress(CSS)
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    gz_bytes = c.compress(CSS) + c.flush()
    write(css + ".br", br_bytes, now - 50)
    write(css + ".gz", gz_bytes, now - 50)
    s = start_server(docroot, "--compress", "off")  # siblings are used even so
    st, h, body = get(s.port, "/a.css", {"Accept-Encoding": "br"})
    assert st == 200 and h["content-encoding"] == "br"
    assert body == br_bytes
    assert "text/css" in h["content-type"]
    assert "accept-encoding" in h.get("vary", "").lower()
    st, h, body = get(s.port, "/a.css", {"Accept-Encoding": "gzip"})
    assert h["content-encoding"] == "gzip" and body == gz_bytes
    st, h, body = get(s.port, "/a.css", {"Accept-Encoding": "identity"})
    assert "content-encoding" not in h and body == CSS


def test_stale_sibling_not_used(start_server, docroot):
    now = time.time()
    css = os.path.join(docroot, "a.css")
    write(css + ".gz", b"STALE GZIP SIBLING", now - 100)
    write(css, CSS, now - 10)  # newer than its .gz
    s = start_server(docroot)
    st, h, body = get(s.port, "/a.css", {"Accept-Encoding": "gzip"})
    assert st == 200
    assert body != b"STALE GZIP SIBLING"
    if "content-encoding" in h:
        assert h["content-encoding"] == "gzip"
        body = decode("gzip", body)
    assert body == CSS
    s2 = start_server(docroot, "--compress", "off")
    st, h, body = get(s2.port, "/a.css", {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in h and body == CSS


def test_etag_of_encoded_variant(start_server, docroot):
    write(os.path.join(docroot, "b.css"), CSS)
    s = start_server(docroot)
    st, h_id, body = get(s.port, "/b.css", {"Accept-Encoding": "identity"})
    st, h_gz, body_gz = get(s.port, "/b.css", {"Accept-Encoding": "gzip"})
    assert h_gz["content-encoding"] == "gzip"
    assert decode("gzip", body_gz) == CSS
    assert h_id["etag"] and h_gz["etag"]
    assert h_id["etag"] != h_gz["etag"]
    st, h, body = get(s.port, "/b.css", {"Accept-Encoding": "gzip", "If-None-Match": h_gz["etag"]})
    assert st == 304 and body == b""
    st, h, body = get(s.port, "/b.css", {"Accept-Encoding": "identity", "If-None-Match": h_id["etag"]})
    assert st == 304
    # the gzip ETag does not validate the identity variant
    st, h, body = get(s.port, "/b.css", {"Accept-Encoding": "identity", "If-None-Match": h_gz["etag"]})
    assert st == 200 and body == CSS


def test_cache_rules(start_server, docroot):
    os.makedirs(os.path.join(docroot, "assets"))
    write(os.path.join(docroot, "assets", "x.js"), b"var x = 1;\n")
    write(os.path.join(docroot, "other.js"), b"var y = 2;\n")
    write(os.path.join(docroot, "img.png"), b"\x89PNG....")
    s = start_server(docroot, "--cache-rule", "/assets/*=public, max-age=60", "--cache-rule", "/*.png=max-age=5",
                     "--static-cache-control", "no-cache")
    st, h, _ = get(s.port, "/assets/x.js")
    assert st == 200 and h["cache-control"] == "public, max-age=60"
    st, h, _ = get(s.port, "/img.png")
    assert st == 200 and h["cache-control"] == "max-age=5"
    st, h, _ = get(s.port, "/other.js")
    assert st == 200 and h["cache-control"] == "no-cache"
    s2 = start_server(docroot, "--cache-rule", "/assets/*=public, max-age=60")
    st, h, _ = get(s2.port, "/other.js")
    assert st == 200 and h.get("cache-control") != "public, max-age=60"


@pytest.mark.parametrize("path", ["/text.php", "/b.css"])
def test_compression_over_h2(start_server, docroot, path):
    write(os.path.join(docroot, "b.css"), CSS)
    s = start_server(docroot, "--h2c")
    plain = identity(s.port, path)
    for enc in ("gzip", "br", "zstd"):
        out = subprocess.run(["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge", "-D", "-", "-o",
                              "/dev/stdout", "-H", "Accept-Encoding: " + enc, s.url(path)],
                             capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        head, _, body = out.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/2 200"), head
        assert b"content-encoding: " + enc.encode() in head.lower(), head
        assert decode(enc, body) == plain
    out = subprocess.run(["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge", "--compressed",
                          "-w", "%{http_version}", s.url(path)], capture_output=True, timeout=30)
    assert out.returncode == 0
    assert out.stdout == plain + b"2"
