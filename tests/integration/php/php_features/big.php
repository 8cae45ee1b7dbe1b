<?php
// ?n bytes of numbered lines (bigger than any internal buffer).
$n = (int)$_GET['n'];
$s = '';
for ($i = 0; strlen($s) < $n; $i++) $s .= sprintf("%08d\n", $i);
echo substr($s, 0, $n);
