<?php
// A 5 MB response, written in 64 KB pieces.
header('Content-Type: application/octet-stream');
$piece = str_repeat('0123456789abcdef', 4096);
for ($i = 0; $i < 80; $i++) echo $piece;
