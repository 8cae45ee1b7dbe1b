<?php
header('Content-Type: text/plain');
for ($i = 0; $i < 400; $i++) echo "line $i: the quick brown fox jumps over the lazy dog\n";
