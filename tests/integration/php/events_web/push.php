<?php
// A web request pushing to the clients of a `tusk run` app (TUSK_APP_SOCKET).
$ok = match ($_GET['kind'] ?? 'group') {
    'group' => Tusk\send_to_group($_GET['to'], $_GET['msg']),
    'uid' => Tusk\send_to_uid($_GET['to'], $_GET['msg']),
    'all' => Tusk\broadcast($_GET['msg']),
};
echo $ok ? 'sent' : 'failed';
