<?php
header('Content-Type: text/plain');
echo "first piece " . str_repeat("a", 2000) . "\n";
while (ob_get_level()) ob_end_flush(); // output_buffering=4096 holds small pieces otherwise
flush();
usleep(1500000);
echo "second piece " . str_repeat("b", 2000) . "\n";
