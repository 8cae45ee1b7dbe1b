import requests


def test_hello_and_static(start_server, php_case, tmp_path):
    (tmp_path / "hello.php").write_text('<?php echo "Hello, ", php_sapi_name(), "!";')
    (tmp_path / "a.txt").write_text("static text\n")
    s = start_server(str(tmp_path))
    r = requests.get(s.url("/hello.php"))
    assert r.status_code == 200
    assert r.text == "Hello, fpm-fcgi!"
    assert r.headers["Server"] == "tusk"
    assert "Date" in r.headers
    r = requests.get(s.url("/a.txt"))
    assert r.status_code == 200 and r.text == "static text\n"
    assert r.headers["Content-Type"].startswith("text/plain")


def test_help_and_bad_flag():
    import subprocess
    from conftest import TUSK_BIN
    r = subprocess.run([TUSK_BIN, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--listen" in r.stdout and "TUSK_" in r.stdout
    r = subprocess.run([TUSK_BIN, "serve", "--workers", "lots"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "--workers" in r.stderr
    r = subprocess.run([TUSK_BIN, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "PHP 8.2" in r.stdout


def test_bad_values_for_tls_http2_and_compression_keys(tmp_path):
    # Each new key refuses a bad value with one line naming it, exit 2,
    # before anything starts.
    import subprocess
    from conftest import TUSK_BIN
    cases = [
        (["--compress", "brotli"], "--compress"),
        (["--compress", "gzip,,lzma"], "--compress"),
        (["--cache-rule", "*.png=max-age=5"], "--cache-rule"),
        (["--cache-rule", "/assets/*"], "--cache-rule"),
        (["--h2-max-streams", "0"], "--h2-max-streams"),
        (["--h2-max-streams", "20000"], "--h2-max-streams"),
        (["--output-buffer-size", "1k"], "--output-buffer-size"),
        (["--tls-ocsp-refresh", "soon"], "--tls-ocsp-refresh"),
        (["--h2c=maybe"], "--h2c"),
        (["--compress-min-size", "-1"], "--compress-min-size"),
        (["--tls-cert", str(tmp_path / "c.pem")], "--tls-key"),
        (["--tls-listen", "127.0.0.1:0"], "--tls-listen"),
        (["--tls-cert", "a.pem", "--tls-key", "k.pem", "--tls-listen", "nope"], "--tls-listen"),
    ]
    for args, name in cases:
        r = subprocess.run([TUSK_BIN, "serve", str(tmp_path), "--listen", "127.0.0.1:0"] + args,
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stderr.count("\n") == 1 and name in r.stderr, (args, r.stderr)
    # Files that cannot be loaded: non-zero, the file named.
    r = subprocess.run([TUSK_BIN, "serve", str(tmp_path), "--listen", "127.0.0.1:0", "--tls-cert",
                        str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "missing-key.pem"),
                        "--tls-listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "missing.pem" in r.stderr, r.stderr
    # More certificates than keys, and more than the bound: refused, not truncated.
    for certs, keys, want in [("a.pem,b.pem", "a-key.pem", "one key per certificate"),
                              (",".join("c%d.pem" % i for i in range(65)),
                               ",".join("k%d.pem" % i for i in range(65)), "at most 64")]:
        r = subprocess.run([TUSK_BIN, "serve", str(tmp_path), "--listen", "127.0.0.1:0", "--tls-cert", certs,
                            "--tls-key", keys, "--tls-listen", "127.0.0.1:0"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode != 0 and want in r.stderr, r.stderr
