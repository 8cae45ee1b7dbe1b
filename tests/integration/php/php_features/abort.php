<?php
// Streams until the client goes away, then records connection_aborted().
ignore_user_abort((bool)($_GET['ignore'] ?? 1));
$out = $_GET['out'];
register_shutdown_function(function () use ($out) {
    file_put_contents($out . '.shutdown', (string)connection_status());
});
while (ob_get_level()) ob_end_flush();
$deadline = microtime(true) + 3;
$i = 0;
while (microtime(true) < $deadline) {
    echo "tick $i\n";
    flush();
    $i++;
    if (connection_aborted()) break;
    usleep(50000);
}
file_put_contents($out, connection_aborted() . ' ' . $i);
