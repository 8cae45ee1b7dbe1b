<?php
// 3 MB: more than the stream's initial flow-control window.
header('Content-Type: application/octet-stream');
$chunk = str_repeat('0123456789abcdef', 4096);
for ($i = 0; $i < 48; $i++) {
    echo $chunk;
}
