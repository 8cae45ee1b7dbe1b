"""Real applications from Debian packages, run end to end through Tusk.

DokuWiki (package `dokuwiki`) and Adminer (package `adminer`) are driven
the way a browser drives them: forms are fetched, their hidden fields
(CSRF tokens) extracted and posted back, cookies kept in a
requests.Session. Nothing under /usr, /etc or /var is modified: each test
builds its own copy of the installation under tmp_path.

DokuWiki's Debian layout is reproduced under a root R:
  R/usr/share/dokuwiki       the code, the document root
      lib/tpl     -> R/var/lib/dokuwiki/lib/tpl        (symlinks out of
      lib/plugins -> R/var/lib/dokuwiki/lib/plugins     the document root)
      inc/preload.php        Debian's: DOKU_MAIN_CONF = R/etc/dokuwiki/
  R/etc/dokuwiki             configuration (dokuwiki.php, local.php, ...)
      users.auth.php -> R/var/lib/dokuwiki/acl/users.auth.php
      acl.auth.php   -> R/var/lib/dokuwiki/acl/acl.auth.php
  R/var/lib/dokuwiki/data    pages, media, meta, cache (savedir)
Debian's links are absolute (/usr/share/dokuwiki/lib/tpl ->
/var/lib/dokuwiki/lib/tpl); here they are relative so that the tree can be
copied. The code is built once per module and hard-linked into each test's
root (it is only read); conf and data are real per-test copies.
"""
import gzip
import html
import os
import re
import shutil
import sqlite3
import subprocess
import time

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "apps")

DW_SHARE = "/usr/share/dokuwiki"
DW_ETC = "/etc/dokuwiki"
DW_VAR = "/var/lib/dokuwiki"
ADMINER_PHP = "/usr/share/adminer/adminer.php"

T = 15  # seconds: timeout of every HTTP request

needs_dokuwiki = pytest.mark.skipif(
    not (os.path.isfile(os.path.join(DW_SHARE, "doku.php"))
         and os.access(os.path.join(DW_VAR, "data", "pages"), os.R_OK)
         and os.access(os.path.join(DW_ETC, "dokuwiki.php"), os.R_OK)),
    reason="the dokuwiki package is not installed (or its data is not readable)")
needs_adminer = pytest.mark.skipif(not os.path.isfile(ADMINER_PHP), reason="the adminer package is not installed")


def php_password_hash(password):
    """A bcrypt hash made by PHP's own password_hash()."""
    out = subprocess.run(["php", "-r", "echo password_hash($argv[1], PASSWORD_BCRYPT);", "--", password],
                         capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.startswith("$2y$"), out
    return out.stdout


def hidden_fields(page, form_id):
    """The hidden inputs of the DokuWiki form with this id, unescaped."""
    m = re.search(r'<form id="%s"(.*?)</form>' % re.escape(form_id), page, re.S)
    assert m, "no form %s in the page:\n%s" % (form_id, page[:3000])
    return {k: html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', m.group(1))}


# ---- DokuWiki ----------------------------------------------------------------


def _relink(link, target):
    os.unlink(link)
    os.symlink(os.path.relpath(target, os.path.dirname(link)), link)


@pytest.fixture(scope="module")
def dokuwiki_pristine(tmp_path_factory):
    """A copy of the Debian installation (code, conf, data) with its links
    re-pointed inside the copy; built once per module, never served."""
    m = str(tmp_path_factory.mktemp("dokuwiki-pristine"))
    share = os.path.join(m, "usr/share/dokuwiki")
    etc = os.path.join(m, "etc/dokuwiki")
    var = os.path.join(m, "var/lib/dokuwiki")
    for d in (os.path.dirname(share), os.path.dirname(etc), var):
        os.makedirs(d, exist_ok=True)
    subprocess.run(["cp", "-a", DW_SHARE, share], check=True)
    subprocess.run(["cp", "-a", DW_ETC, etc], check=True)
    subprocess.run(["cp", "-a", os.path.join(DW_VAR, "lib"), os.path.join(DW_VAR, "data"), var], check=True)
    os.makedirs(os.path.join(var, "acl"))
    _relink(os.path.join(share, "lib/tpl"), os.path.join(var, "lib/tpl"))
    _relink(os.path.join(share, "lib/plugins"), os.path.join(var, "lib/plugins"))
    if os.path.lexists(os.path.join(share, ".htaccess")):
        _relink(os.path.join(share, ".htaccess"), os.path.join(etc, "htaccess"))
    _relink(os.path.join(etc, "acl.auth.php"), os.path.join(var, "acl/acl.auth.php"))
    _relink(os.path.join(etc, "users.auth.php"), os.path.join(var, "acl/users.auth.php"))
    # Debian's inc/preload.php names /etc/dokuwiki and /var/lib/dokuwiki:
    # make those paths relative to the root of this tree
    # (inc -> dokuwiki -> share -> usr -> root).
    pre = os.path.join(share, "inc/preload.php")
    with open(pre) as f:
        src = f.read()
    new = re.sub(r"""(['"])/(etc/dokuwiki|var/lib/dokuwiki)""", r"dirname(__DIR__, 4).\1/\2", src)
    assert new.count("dirname(__DIR__, 4)") >= 3, "Debian's preload.php changed: " + src[:500]
    os.unlink(pre)
    with open(pre, "w") as f:
        f.write(new)
    return m


class Wiki:
    def __init__(self, root):
        self.root = root
        self.docroot = os.path.join(root, "usr/share/dokuwiki")
        self.conf = os.path.join(root, "etc/dokuwiki")
        self.data = os.path.join(root, "var/lib/dokuwiki/data")
        self.acl = os.path.join(root, "var/lib/dokuwiki/acl")
        self.sessions = os.path.join(root, "sessions")


def make_wiki(pristine, tmp_path, local_php, users=None, acl=None):
    """This test's own installation, configured by local.php lines."""
    root = str(tmp_path / "wiki")
    w = Wiki(root)
    os.makedirs(os.path.join(root, "usr/share"))
    os.makedirs(os.path.join(root, "var/lib/dokuwiki"))
    os.makedirs(os.path.join(root, "etc"))
    os.makedirs(w.sessions)
    # Code: hard links (read only). Conf and data: real copies.
    subprocess.run(["cp", "-al", os.path.join(pristine, "usr/share/dokuwiki"), os.path.join(root, "usr/share/")], check=True)
    subprocess.run(["cp", "-al", os.path.join(pristine, "var/lib/dokuwiki/lib"), os.path.join(root, "var/lib/dokuwiki/")], check=True)
    subprocess.run(["cp", "-a", os.path.join(pristine, "var/lib/dokuwiki/data"), os.path.join(pristine, "var/lib/dokuwiki/acl"),
                    os.path.join(root, "var/lib/dokuwiki/")], check=True)
    subprocess.run(["cp", "-a", os.path.join(pristine, "etc/dokuwiki"), os.path.join(root, "etc/")], check=True)
    os.unlink(os.path.join(w.conf, "local.php"))
    with open(os.path.join(w.conf, "local.php"), "w") as f:
        f.write("<?php\n$conf['title'] = 'Tusk Wiki';\n$conf['savedir'] = '%s';\n%s\n" % (w.data, local_php))
    with open(os.path.join(w.acl, "users.auth.php"), "w") as f:
        f.write("# users.auth.php\n# <?php exit()?>\n" + (users or ""))
    with open(os.path.join(w.acl, "acl.auth.php"), "w") as f:
        f.write("# acl.auth.php\n# <?php exit()?>\n" + (acl or ""))
    # DokuWiki's caches (css.php, js.php, rendered pages) are stale while
    # their cache file is not strictly newer (in whole seconds) than the
    # config: date the config back so that a cache made now is valid.
    past = time.time() - 60
    for p in ("local.php", "users.auth.php", "acl.auth.php"):
        os.utime(os.path.join(w.conf, p), (past, past))
    return w


def start_wiki(start_server, w, *args):
    return start_server(w.docroot, "--allow-symlinks", "-d", "session.save_path=" + w.sessions, *args)


def save_page(s, srv, page_id, text, summary, sectok=None):
    """Opens the editor and posts the form as the Save button does."""
    r = s.get(srv.url("/doku.php"), params={"id": page_id, "do": "edit"}, timeout=T)
    assert r.status_code == 200
    f = hidden_fields(r.text, "dw__editform")
    assert f["id"] == page_id
    assert 'readonly="readonly"' not in r.text.split('id="dw__editform"')[1].split("</form>")[0], "editor is read only"
    if sectok is not None:
        f["sectok"] = sectok
    f.update({"wikitext": text, "summary": summary, "do[save]": "1"})
    return s.post(srv.url("/doku.php?id=%s&do=edit" % page_id), data=f, allow_redirects=False, timeout=T)


def read_changes(w, page_id):
    path = os.path.join(w.data, "meta", *page_id.split(":")) + ".changes"
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f]


WIKITEXT = ("====== Hello Tusk ======\n\n"
            "This page was **saved through Tusk** with ümlauts & <angle> brackets.\n\n"
            "  * item one\n  * item two\n")


@needs_dokuwiki
def test_dokuwiki_create_page_through_editor_and_read_it_back(start_server, dokuwiki_pristine, tmp_path):
    w = make_wiki(dokuwiki_pristine, tmp_path, "$conf['useacl'] = 0;")
    srv = start_wiki(start_server, w)
    s = requests.Session()

    r = save_page(s, srv, "test:page", WIKITEXT, "created by the test")
    # DokuWiki answers the POST with a redirect to the page, built from
    # HTTP_HOST (the Host header, port included).
    assert r.status_code == 302, r.text[:2000]
    assert r.headers["Location"] == srv.url("/doku.php?id=test:page")
    assert "DokuWiki" in s.cookies  # the session cookie

    r = s.get(r.headers["Location"], timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<title>test:page [Tusk Wiki]</title>' in r.text
    assert re.search(r'<h1 class="sectionedit1" id="hello_tusk">Hello Tusk</h1>', r.text)
    assert "<strong>saved through Tusk</strong> with ümlauts &amp; &lt;angle&gt; brackets." in r.text
    assert re.search(r'<li class="level1"><div class="li"> item two</div>', r.text)

    # The page is a file in the data directory, with the text as posted.
    with open(os.path.join(w.data, "pages/test/page.txt"), encoding="utf-8") as f:
        assert f.read().rstrip("\n") == WIKITEXT.rstrip("\n")
    # The change log names the client address (REMOTE_ADDR) and the summary.
    (change,) = read_changes(w, "test:page")
    assert change[1:4] == ["127.0.0.1", "C", "test:page"] and change[5] == "created by the test"

    # The raw source, as DokuWiki exports it.
    r = s.get(srv.url("/doku.php"), params={"do": "export_raw", "id": "test:page"}, timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.content.decode("utf-8").rstrip("\n") == WIKITEXT.rstrip("\n")

    # The recent changes feed lists it, with absolute links built from the
    # Host header.
    r = s.get(srv.url("/feed.php"), timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert "<title>test:page - created by the test</title>" in r.text
    assert re.search(r"<link>%s&amp;rev=\d+&amp;do=diff</link>" % re.escape(srv.url("/doku.php?id=test:page")), r.text), r.text

    # The same through DokuWiki's own request header (X-DokuWiki-Do, read
    # as $_SERVER['HTTP_X_DOKUWIKI_DO']).
    r = s.get(srv.url("/doku.php"), params={"id": "test:page"}, headers={"X-DokuWiki-Do": "export_raw"}, timeout=T)
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.content.decode("utf-8").rstrip("\n") == WIKITEXT.rstrip("\n")

    # The sitemap's namespace tree (an AJAX POST to lib/exe/ajax.php) lists
    # the new page.
    r = s.post(srv.url("/lib/exe/ajax.php"), data={"call": "index", "idx": "test"},
               headers={"X-Requested-With": "XMLHttpRequest"}, timeout=T)
    assert r.status_code == 200
    assert re.search(r'<a href="/doku\.php\?id=test:page" class="wikilink1" title="test:page"[^>]*>', r.text), r.text

    # A second edit: the editor now holds the saved text and the save
    # makes an "E" (edit) entry.
    r = s.get(srv.url("/doku.php"), params={"id": "test:page", "do": "edit"}, timeout=T)
    assert html.escape("saved through Tusk** with ümlauts &", quote=False) in r.text
    r = save_page(s, srv, "test:page", WIKITEXT + "\nSecond revision.\n", "second")
    assert r.status_code == 302
    r = s.get(srv.url("/doku.php?id=test:page"), timeout=T)
    assert "Second revision." in r.text
    assert [c[2] for c in read_changes(w, "test:page")] == ["C", "E"]

    # "/" runs the installation's index.php, which leads to the start page.
    r = s.get(srv.url("/"), timeout=T)
    assert r.status_code == 200
    assert "<title>start [Tusk Wiki]</title>" in r.text


@needs_dokuwiki
def test_dokuwiki_large_page(start_server, dokuwiki_pristine, tmp_path):
    """A page of about 400 KB: a large urlencoded POST, and a rendered page
    bigger than what PHP hands to the server at once."""
    w = make_wiki(dokuwiki_pristine, tmp_path, "$conf['useacl'] = 0;")
    srv = start_wiki(start_server, w)
    s = requests.Session()
    text = "====== Big ======\n\n" + "".join("  * line %05d äöü <&> %s\n" % (i, "x" * 40) for i in range(6000))
    assert len(text.encode()) > 350000
    r = save_page(s, srv, "test:big", text, "big")
    assert r.status_code == 302
    with open(os.path.join(w.data, "pages/test/big.txt"), encoding="utf-8") as f:
        assert f.read().rstrip("\n") == text.rstrip("\n")
    r = s.get(srv.url("/doku.php?id=test:big"), timeout=T)
    assert r.status_code == 200
    items = re.findall(r'<li class="level1"><div class="li"> line (\d{5}) äöü &lt;&amp;&gt; x{40}</div>', r.text)
    assert items == ["%05d" % i for i in range(6000)]
    assert r.text.rstrip().endswith("</html>")


@needs_dokuwiki
def test_dokuwiki_login_csrf_upload_and_logout(start_server, dokuwiki_pristine, tmp_path):
    password = "s3cret Pass!"
    w = make_wiki(dokuwiki_pristine, tmp_path,
                  "$conf['useacl'] = 1;\n$conf['authtype'] = 'authplain';\n$conf['superuser'] = '@admin';",
                  users="admin:%s:Wiki Admin:admin@example.org:admin,user\n" % php_password_hash(password),
                  acl="*\t@ALL\t1\n*\t@user\t16\n")
    srv = start_wiki(start_server, w)
    s = requests.Session()

    # Anonymous visitors may only read.
    r = s.get(srv.url("/doku.php"), params={"id": "test:secret", "do": "edit"}, timeout=T)
    assert r.status_code == 200
    assert "Logged in as" not in r.text

    r = s.get(srv.url("/doku.php"), params={"id": "start", "do": "login"}, timeout=T)
    assert r.status_code == 200
    login = hidden_fields(r.text, "dw__login")
    assert login["do"] == "login"

    # Wrong password: DokuWiki's http_status(403, 'Login failed').
    r = s.post(srv.url("/doku.php?id=start"), data=dict(login, u="admin", p="wrong"), allow_redirects=False, timeout=T)
    assert r.status_code == 403
    assert r.reason == "Login failed"
    assert '<div class="error">Sorry, username or password was wrong.</div>' in r.text
    assert "Logged in as" not in r.text
    assert not [c for c in s.cookies if c.name.startswith("DW")]

    # Right password: the auth cookie, then a redirect to the page.
    r = s.post(srv.url("/doku.php?id=start"), data=dict(login, u="admin", p=password), allow_redirects=False, timeout=T)
    assert r.status_code == 302, r.text[:3000]
    assert r.headers["Location"] == srv.url("/doku.php?id=start")
    auth_cookies = [c for c in s.cookies if c.name.startswith("DW")]
    assert len(auth_cookies) == 1 and auth_cookies[0].path == "/"

    r = s.get(r.headers["Location"], timeout=T)
    assert r.status_code == 200
    assert "Logged in as: <bdi>Wiki Admin</bdi> (<bdi>admin</bdi>)" in r.text
    m = re.search(r'href="(/doku\.php\?id=start&amp;do=logout&amp;sectok=([0-9a-f]{32}))"', r.text)
    assert m, "no logout link"
    logout_url, sectok = html.unescape(m.group(1)), m.group(2)
    assert 'do=admin' in r.text  # the superuser sees the admin link

    # A save with a forged CSRF token is refused and writes nothing.
    r = save_page(s, srv, "test:secret", "forged\n", "forged", sectok="0" * 32)
    assert "Security Token did not match. Possible CSRF attack." in r.text
    assert not os.path.exists(os.path.join(w.data, "pages/test/secret.txt"))
    # With the token from the form it is saved, in the user's name.
    r = save_page(s, srv, "test:secret", "Only for **members**.\n", "by admin")
    assert r.status_code == 302
    with open(os.path.join(w.data, "pages/test/secret.txt")) as f:
        assert f.read() == "Only for **members**.\n"
    (change,) = read_changes(w, "test:secret")
    assert change[4] == "admin"

    # Media manager upload: a multipart/form-data POST with a file.
    r = s.get(srv.url("/doku.php"), params={"id": "test:secret", "do": "media", "ns": "test", "tab_files": "upload"}, timeout=T)
    up = hidden_fields(r.text, "dw__upload")
    assert up["sectok"] == sectok
    action = html.unescape(re.search(r'<form id="dw__upload"[^>]* action="([^"]+)"', r.text).group(1))
    with open(os.path.join(DW_SHARE, "lib/tpl/dokuwiki/images/logo.png"), "rb") as f:
        png = f.read()
    r = s.post(srv.url(action), data=dict(up, mediaid="tusk-logo.png"),
               files={"upload": ("logo.png", png, "image/png")}, timeout=T)
    assert r.status_code == 200
    assert "Upload successful" in r.text, re.findall(r'<div class="(?:error|success|info)">.*?</div>', r.text)
    with open(os.path.join(w.data, "media/test/tusk-logo.png"), "rb") as f:
        assert f.read() == png
    r = s.get(srv.url("/lib/exe/fetch.php"), params={"media": "test:tusk-logo.png"}, timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "image/png"
    assert r.content == png

    # Logout (the link carries the token); afterwards the user is gone.
    r = s.get(srv.url(logout_url), timeout=T)
    assert r.status_code == 200
    r = s.get(srv.url("/doku.php?id=test:secret"), timeout=T)
    assert "Logged in as" not in r.text
    assert "do=login" in r.text
    assert "Only for <strong>members</strong>." in r.text  # @ALL may read


@needs_dokuwiki
def test_dokuwiki_static_files_css_and_media(start_server, dokuwiki_pristine, tmp_path):
    w = make_wiki(dokuwiki_pristine, tmp_path, "$conf['useacl'] = 0;")
    srv = start_wiki(start_server, w)
    s = requests.Session()

    # The template's logo, a static file reached through Debian's
    # lib/tpl symlink (it points out of the document root).
    r = s.get(srv.url("/lib/tpl/dokuwiki/images/logo.png"), timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "image/png"
    with open(os.path.join(DW_SHARE, "lib/tpl/dokuwiki/images/logo.png"), "rb") as f:
        assert r.content == f.read()
    r2 = s.get(srv.url("/lib/tpl/dokuwiki/images/logo.png"), headers={"If-None-Match": r.headers["ETag"]}, timeout=T)
    assert r2.status_code == 304 and r2.content == b""

    # The stylesheet, built by PHP (lib/exe/css.php) from the template's
    # LESS files and cached in the data directory.
    r = s.get(srv.url("/lib/exe/css.php"), params={"t": "dokuwiki", "tseed": "1"}, timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/css; charset=utf-8"
    assert ".dokuwiki" in r.text and "#dokuwiki__header" in r.text
    # Compressed by Tusk (requests accepts gzip): the length is of the
    # encoded bytes, and they decode to the whole stylesheet.
    assert r.headers["Content-Encoding"] in ("gzip", "br") and "Accept-Encoding" in r.headers["Vary"]
    assert len(r.content) > 10000 and len(r.content) > int(r.headers["Content-Length"]) > 0
    raw = s.get(srv.url("/lib/exe/css.php"), params={"t": "dokuwiki", "tseed": "1"}, timeout=T, stream=True,
                headers={"Accept-Encoding": "gzip"})
    body = raw.raw.read(decode_content=False)
    assert len(body) == int(raw.headers["Content-Length"]) and gzip.decompress(body) == r.content
    r = s.get(srv.url("/lib/exe/css.php"), params={"t": "dokuwiki", "tseed": "1"}, timeout=T)
    etag = r.headers["ETag"]
    r = s.get(srv.url("/lib/exe/css.php"), params={"t": "dokuwiki", "tseed": "1"}, headers={"If-None-Match": etag}, timeout=T)
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["ETag"] == etag

    # Media through PHP (lib/exe/fetch.php), whole and a byte range.
    with open(os.path.join(DW_VAR, "data/media/wiki/dokuwiki-128.png"), "rb") as f:
        png = f.read()
    r = s.get(srv.url("/lib/exe/fetch.php"), params={"media": "wiki:dokuwiki-128.png"}, timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "image/png"
    assert r.content == png
    r = s.get(srv.url("/lib/exe/fetch.php"), params={"media": "wiki:dokuwiki-128.png"}, headers={"Range": "bytes=0-9"}, timeout=T)
    assert r.status_code == 206
    assert r.headers["Content-Range"] == "bytes 0-9/%d" % len(png)
    assert r.content == png[:10]

    # The data and conf directories are outside the document root: nothing
    # of them can be fetched.
    for path in ("/data/pages/wiki/welcome.txt", "/conf/local.php", "/../../../etc/dokuwiki/local.php",
                 "/.htaccess"):
        r = requests.get(srv.url(path), timeout=T)
        assert "savedir" not in r.text and "====== Welcome" not in r.text, path


@needs_dokuwiki
def test_dokuwiki_symlinked_template_needs_allow_symlinks(start_server, dokuwiki_pristine, tmp_path):
    """Without --allow-symlinks, static files behind Debian's links out of
    the document root are not served (like Apache without FollowSymLinks);
    the PHP code, which includes them by path, is not affected."""
    w = make_wiki(dokuwiki_pristine, tmp_path, "$conf['useacl'] = 0;")
    srv = start_server(w.docroot, "-d", "session.save_path=" + w.sessions)
    r = requests.get(srv.url("/lib/tpl/dokuwiki/images/logo.png"), timeout=T)
    assert r.status_code == 404
    r = requests.get(srv.url("/doku.php?id=wiki:welcome"), timeout=T)
    assert r.status_code == 200
    assert "<title>wiki:welcome [Tusk Wiki]</title>" in r.text
    assert "/lib/tpl/dokuwiki/images/logo.png" in r.text


@needs_dokuwiki
def test_dokuwiki_front_controller_urls(start_server, dokuwiki_pristine, tmp_path):
    """A URL that is no file goes to DokuWiki's index.php (Tusk's default
    front controller, like nginx's `try_files $uri /index.php`). Under
    php-fpm, index.php redirects to the start page; under `php -S`
    (php_sapi_name() 'cli-server') it is a router that shows the page
    named by the path. Either is fine; inventing a page "index.php" is not."""
    w = make_wiki(dokuwiki_pristine, tmp_path, "$conf['useacl'] = 0;")
    srv = start_wiki(start_server, w)
    for path in ("/wiki:welcome", "/wiki/welcome"):
        r = requests.get(srv.url(path), timeout=T)
        assert r.status_code == 200
        title = re.search(r"<title>(.*?)</title>", r.text).group(1)
        assert title in ("start [Tusk Wiki]", "wiki:welcome [Tusk Wiki]"), (path, title)


@needs_dokuwiki
def test_dokuwiki_path_info_urls(start_server, dokuwiki_pristine, tmp_path):
    """userewrite=2: DokuWiki's own URL rewriting through PATH_INFO
    (/doku.php/namespace:page)."""
    w = make_wiki(dokuwiki_pristine, tmp_path, "$conf['useacl'] = 0;\n$conf['userewrite'] = 2;")
    srv = start_wiki(start_server, w)
    s = requests.Session()
    r = s.get(srv.url("/doku.php/wiki:welcome"), timeout=T)
    assert r.status_code == 200
    assert "<title>wiki:welcome [Tusk Wiki]</title>" in r.text
    assert 'href="/doku.php/wiki:syntax"' in r.text
    # The editor's form posts back to a PATH_INFO URL; the save redirects to one.
    r = s.get(srv.url("/doku.php/test:pi"), params={"do": "edit"}, timeout=T)
    assert 'action="/doku.php/test:pi?do=edit"' in r.text
    f = hidden_fields(r.text, "dw__editform")
    f.update({"wikitext": "Reached through PATH_INFO.\n", "summary": "", "do[save]": "1"})
    r = s.post(srv.url("/doku.php/test:pi?do=edit"), data=f, allow_redirects=False, timeout=T)
    assert r.status_code == 302
    assert r.headers["Location"] == srv.url("/doku.php/test:pi")
    r = s.get(r.headers["Location"], timeout=T)
    assert "Reached through PATH_INFO." in r.text
    assert os.path.isfile(os.path.join(w.data, "pages/test/pi.txt"))


@needs_dokuwiki
def test_dokuwiki_task_runner_answer_is_complete_before_the_task_ends(start_server, dokuwiki_pristine, tmp_path):
    """Every page embeds <img src="lib/exe/taskrunner.php">: it sends a 1x1
    GIF with "Content-Length: 42" and "Connection: Close", flushes, then
    does the wiki's housekeeping (here a plugin makes it take 1.5 s). With
    php-fpm behind nginx (or mod_php) the client has the whole, correctly
    framed answer at once; it must not have to wait for the task."""
    w = make_wiki(dokuwiki_pristine, tmp_path, "$conf['useacl'] = 0;")
    shutil.copytree(os.path.join(APPS, "dokuwiki", "tusksleep"),
                    os.path.join(w.root, "var/lib/dokuwiki/lib/plugins/tusksleep"))
    srv = start_wiki(start_server, w)
    r = requests.get(srv.url("/doku.php?id=wiki:welcome"), timeout=T)
    m = re.search(r'<img src="(/lib/exe/taskrunner\.php\?id=wiki%3Awelcome&amp;[^"]*)"', r.text)
    assert m, "no task runner image in the page"
    done = os.path.join(w.data, "tmp", "tusksleep.done")

    t0 = time.monotonic()
    r = requests.get(srv.url(html.unescape(m.group(1))), timeout=T)
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "image/gif"
    assert r.content[:6] == b"GIF89a" and len(r.content) == 42
    # The answer is framed as the script declared it, so the client knows
    # it is complete without waiting for the end of the script.
    assert elapsed < 1.0, "the client waited %.2fs for a background task" % elapsed
    assert r.headers.get("Content-Length") == "42"
    assert "Transfer-Encoding" not in r.headers
    # The task still ran to its end (ignore_user_abort).
    deadline = time.time() + 5
    while not os.path.exists(done) and time.time() < deadline:
        time.sleep(0.05)
    assert os.path.exists(done)


# ---- Adminer -------------------------------------------------------------------


def make_adminer(tmp_path):
    docroot = tmp_path / "adminer"
    docroot.mkdir()
    shutil.copy(os.path.join(APPS, "adminer", "index.php"), docroot / "index.php")
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    db = str(tmp_path / "shop.sqlite")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE fruit (id INTEGER PRIMARY KEY, name TEXT NOT NULL, color TEXT)")
    con.executemany("INSERT INTO fruit (name, color) VALUES (?, ?)",
                    [("apple", "red"), ("banana", "yellow"), ("kiwi", "green")])
    con.commit()
    con.close()
    return str(docroot), str(sessions), db


def fruit_rows(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT id, name, color FROM fruit ORDER BY id").fetchall()
    finally:
        con.close()


def adminer_login(s, srv, db):
    r = s.get(srv.url("/"), timeout=T)
    assert r.status_code == 200
    assert "<title>Login - Tusk Adminer</title>" in r.text
    assert "name='auth[driver]'" in r.text and '<option value="sqlite">SQLite 3' in r.text
    r = s.post(srv.url("/"), data={"auth[driver]": "sqlite", "auth[server]": "", "auth[username]": "",
                                   "auth[password]": "", "auth[db]": db}, allow_redirects=False, timeout=T)
    assert r.status_code == 302, r.text[:3000]
    assert r.headers["Location"] == "?sqlite=&username=&db=" + requests.utils.quote(db, safe="")
    return r


def adminer_token(page):
    return html.unescape(re.search(r"""name=["']token["'] value=["']([^"']+)["']""", page).group(1))


@needs_adminer
def test_adminer_sqlite_login_browse_and_sql_command(start_server, tmp_path):
    docroot, sessions, db = make_adminer(tmp_path)
    srv = start_server(docroot, "-d", "session.save_path=" + sessions,
                       # Adminer keeps its failed-login counter in the temp dir.
                       "-d", "sys_temp_dir=" + sessions, "-d", "upload_tmp_dir=" + sessions)
    s = requests.Session()
    q = {"sqlite": "", "username": "", "db": db}

    r = adminer_login(s, srv, db)
    assert "adminer_sid" in s.cookies
    r = s.get(srv.url("/" + r.headers["Location"]), timeout=T)
    assert r.status_code == 200
    assert "<h2>Database: %s</h2>" % html.escape(db) in r.text
    # The table list.
    assert re.search(r"<a href='\?sqlite=&amp;username=&amp;db=[^']*&amp;select=fruit'[^>]*>", r.text)
    assert "Adminer does not support accessing a database without a password" not in r.text

    # Browse the rows.
    r = s.get(srv.url("/"), params=dict(q, select="fruit"), timeout=T)
    assert r.status_code == 200
    assert "<h2>Select: fruit</h2>" in r.text
    cells = re.findall(r"<td(?: [^>]*)?>([^<]*)", r.text)
    for row in fruit_rows(db):
        i = cells.index(row[1])
        assert cells[i - 1:i + 2] == [str(row[0]), row[1], row[2]]

    # The SQL command form (a multipart/form-data POST): an INSERT and a
    # SELECT in one go.
    r = s.get(srv.url("/"), params=dict(q, sql=""), timeout=T)
    assert 'enctype="multipart/form-data" id="form"' in r.text
    token = adminer_token(r.text)
    sql = "INSERT INTO fruit (name, color) VALUES ('cherry', 'dark red');\nSELECT name, color FROM fruit WHERE id = 4;"
    r = s.post(srv.url("/"), params=dict(q, sql=""), timeout=T,
               files={"query": (None, sql), "limit": (None, ""), "token": (None, token)})
    assert r.status_code == 200
    assert "Query executed OK, 1 row affected." in r.text, re.findall(r"<p class='error'>.*?</p>", r.text)
    assert "<tr><td>cherry<td>dark red</table>" in r.text
    assert fruit_rows(db)[-1] == (4, "cherry", "dark red")

    # A bad token is refused and changes nothing.
    r = s.post(srv.url("/"), params=dict(q, sql=""), timeout=T,
               files={"query": (None, "DELETE FROM fruit;"), "token": (None, "1:2")})
    assert "Invalid CSRF token" in r.text
    assert len(fruit_rows(db)) == 4

    # Adminer's own static files, served by adminer.php with caching headers.
    r = s.get(srv.url("/"), params={"file": "default.css", "version": "4.8.1"}, timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/css; charset=utf-8"
    assert r.headers["Cache-Control"] == "immutable"
    assert "body" in r.text and r.headers["Content-Encoding"] in ("gzip", "br")
    assert len(r.content) > int(r.headers["Content-Length"]) > 0
    r = s.get(srv.url("/"), params={"file": "default.css", "version": "4.8.1"},
              headers={"If-Modified-Since": r.headers["Last-Modified"]}, timeout=T)
    assert r.status_code == 304 and r.content == b""

    # Logout ends the session: the database needs a login again.
    r = s.get(srv.url("/"), params=q, timeout=T)
    r = s.post(srv.url("/"), params=q, data={"logout": "Logout", "token": adminer_token(r.text)},
               allow_redirects=False, timeout=T)
    assert r.status_code == 302
    r = s.get(srv.url("/"), params=dict(q, select="fruit"), timeout=T)
    assert "<title>Login - Tusk Adminer</title>" in r.text
    assert "cherry" not in r.text


@needs_adminer
def test_adminer_sqlite_import_upload_and_export(start_server, tmp_path):
    docroot, sessions, db = make_adminer(tmp_path)
    srv = start_server(docroot, "-d", "session.save_path=" + sessions,
                       # Adminer keeps its failed-login counter in the temp dir.
                       "-d", "sys_temp_dir=" + sessions, "-d", "upload_tmp_dir=" + sessions)
    s = requests.Session()
    q = {"sqlite": "", "username": "", "db": db}
    adminer_login(s, srv, db)

    # Import: an uploaded .sql file (multipart, $_FILES).
    r = s.get(srv.url("/"), params=dict(q, **{"import": ""}), timeout=T)
    assert "name='sql_file[]'" in r.text
    dump = ("INSERT INTO fruit (name, color) VALUES ('lemon', 'yellow');\n"
            "INSERT INTO fruit (name, color) VALUES ('plum', 'purple');\n").encode()
    r = s.post(srv.url("/"), params=dict(q, **{"import": ""}), timeout=T,
               data={"error_stops": "1", "only_errors": "1", "token": adminer_token(r.text)},
               files={"sql_file[]": ("fruit.sql", dump, "application/sql")})
    assert r.status_code == 200
    assert "2 queries executed OK." in r.text, r.text[r.text.find("<h2>"):][:2000]
    assert fruit_rows(db)[-2:] == [(4, "lemon", "yellow"), (5, "plum", "purple")]

    # Export: the table as SQL on screen, as a CSV download and gzipped.
    r = s.get(srv.url("/"), params=dict(q, dump="fruit"), timeout=T)
    token = adminer_token(r.text[r.text.find("<h2>"):])
    form = {"table_style": "DROP+CREATE", "data_style": "INSERT", "tables[]": "fruit", "data[]": "fruit", "token": token}
    r = s.post(srv.url("/"), params=dict(q, dump="fruit"), data=dict(form, output="text", format="sql"), timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert 'DROP TABLE IF EXISTS "fruit";' in r.text
    assert """INSERT INTO "fruit" ("id", "name", "color") VALUES (5,\t'plum',\t'purple');""" in r.text

    r = s.post(srv.url("/"), params=dict(q, dump="fruit"), data=dict(form, output="file", format="csv"), timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == "attachment; filename=fruit.csv"
    assert r.content.decode("utf-8-sig").splitlines() == ["id,name,color", "1,apple,red", "2,banana,yellow",
                                                          "3,kiwi,green", "4,lemon,yellow", "5,plum,purple"]
    # The export form remembered the choice in a cookie.
    assert "adminer_export" in s.cookies

    r = s.post(srv.url("/"), params=dict(q, dump="fruit"), data=dict(form, output="gz", format="sql"), timeout=T,
               stream=True)
    raw = r.raw.read(decode_content=False)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/x-gzip"
    assert r.headers["Content-Disposition"] == "attachment; filename=fruit.sql.gz"
    assert "Content-Encoding" not in r.headers
    text = gzip.decompress(raw).decode()
    assert """VALUES (4,\t'lemon',\t'yellow');""" in text
