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
