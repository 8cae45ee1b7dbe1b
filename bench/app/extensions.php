<?php
// Probe used by bench/run.sh (not benchmarked): reports the loaded PHP
// extensions, so that a server running with a different configuration is
// visible. Output: "<extensions> <zend extensions> <sorted names, comma separated>".
$e = get_loaded_extensions();
$z = get_loaded_extensions(true);
sort($e);
sort($z);
echo count($e), ' ', count($z), ' ', implode(',', array_merge($e, $z));
