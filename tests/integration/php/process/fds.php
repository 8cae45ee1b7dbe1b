<?php
// Lists this worker's open descriptors: fd => readlink target, and which of
// them are TCP sockets (by inode, from /proc/net/tcp and tcp6).
// ?ms=N sleeps first (so that concurrent requests reach different workers).
if (isset($_GET['ms'])) usleep((int)$_GET['ms'] * 1000);
header('Content-Type: application/json');
$tcp = [];
foreach (['/proc/self/net/tcp', '/proc/self/net/tcp6'] as $f) {
    foreach (@file($f) ?: [] as $i => $line) {
        if ($i === 0) continue;
        $cols = preg_split('/\s+/', trim($line));
        if (isset($cols[9])) $tcp[$cols[9]] = true;
    }
}
$fds = [];
$tcp_fds = [];
foreach (scandir('/proc/self/fd') as $fd) {
    if ($fd === '.' || $fd === '..') continue;
    $t = @readlink("/proc/self/fd/$fd");
    if ($t === false) continue; // the directory handle scandir used
    $fds[$fd] = $t;
    if (preg_match('/^socket:\[(\d+)\]$/', $t, $m) && isset($tcp[$m[1]])) $tcp_fds[] = (int)$fd;
}
echo json_encode(['pid' => getmypid(), 'fds' => $fds, 'tcp_fds' => $tcp_fds]);
