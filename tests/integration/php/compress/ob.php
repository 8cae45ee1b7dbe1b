<?php
ob_start('ob_gzhandler');
header('Content-Type: text/plain');
for ($i = 0; $i < 400; $i++) echo "ob line $i: the quick brown fox\n";
