<?php
// Adminer as Debian packages it (/etc/adminer/conf.php): a small file that
// customises Adminer through adminer_object() and then runs the packaged
// single-file /usr/share/adminer/adminer.php (4.x: class Adminer, no
// namespace). SQLite has no passwords and Adminer 4.x refuses a login with
// an empty password unless login() accepts it, as its docs say.
function adminer_object() {
    class TuskTestAdminer extends Adminer {
        function name() {
            return 'Tusk Adminer';
        }

        function login($login, $password) {
            return true;
        }
    }
    return new TuskTestAdminer;
}

include '/usr/share/adminer/adminer.php';
