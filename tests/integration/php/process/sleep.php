<?php
// Sleeps ?ms= milliseconds (default 1000), then answers "slept <ms> <pid>".
$ms = isset($_GET['ms']) ? (int)$_GET['ms'] : 1000;
usleep($ms * 1000);
header('Content-Type: text/plain');
echo "slept $ms ", getmypid();
