<?php
// Boot reads the "code version" once; a reload (signal or --watch) must
// start processes that read it again. Uses the Tusk namespace API.
require __DIR__ . '/src/lib/version.php';
$version = APP_VERSION;
$pid = getmypid();
$handler = static function () use ($version, $pid) {
    if (isset($_GET['ms'])) {
        usleep((int)$_GET['ms'] * 1000);
    }
    header('Content-Type: text/plain');
    echo "$version $pid";
};
while (\Tusk\handle_request($handler)) {
    gc_collect_cycles();
}
