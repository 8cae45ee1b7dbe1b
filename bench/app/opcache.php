<?php
// Probe used by bench/run.sh (not benchmarked): reports whether OPcache is
// active for the server answering, so an unfair comparison is visible.
$s = function_exists('opcache_get_status') ? @opcache_get_status(false) : false;
echo is_array($s) && !empty($s['opcache_enabled']) ? 'on' : 'off';
