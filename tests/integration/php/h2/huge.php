<?php
// ?mb=N MiB of a known pattern, written in 64 KiB pieces without flush().
header('Content-Type: application/octet-stream');
$piece = str_repeat('0123456789abcdef', 4096);
$n = (int)($_GET['mb'] ?? 1) * 16;
for ($i = 0; $i < $n; $i++) echo $piece;
