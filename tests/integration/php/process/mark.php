<?php
// Records in APCu that it ran (key "ran-<name>"), then sleeps ?ms= milliseconds.
$name = $_GET['name'] ?? 'x';
apcu_store("ran-$name", getmypid());
usleep((int)($_GET['ms'] ?? 0) * 1000);
header('Content-Type: text/plain');
echo "ran $name ", getmypid();
