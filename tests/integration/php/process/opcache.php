<?php
// Reports this worker's view of OPcache: is it on, which scripts are cached,
// and when its shared memory was set up. ?ms=N sleeps first.
if (isset($_GET['ms'])) usleep((int)$_GET['ms'] * 1000);
header('Content-Type: application/json');
$st = function_exists('opcache_get_status') ? opcache_get_status(true) : false;
echo json_encode([
    'pid' => getmypid(),
    'enabled' => is_array($st) && $st['opcache_enabled'],
    'start_time' => is_array($st) ? $st['opcache_statistics']['start_time'] : null,
    'scripts' => is_array($st) ? array_keys($st['scripts']) : [],
]);
