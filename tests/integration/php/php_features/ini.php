<?php
header('Content-Type: application/json');
$st = function_exists('opcache_get_status') ? opcache_get_status(false) : false;
echo json_encode([
    'precision' => ini_get('precision'),
    'third' => (string)(1 / 3),
    'timezone' => ini_get('date.timezone'),
    'output_buffering' => ini_get('output_buffering'),
    'loaded_file' => php_ini_loaded_file(),
    'mbstring' => extension_loaded('mbstring'),
    'mb_strlen' => function_exists('mb_strlen') ? mb_strlen("h\u{e9}llo") : null,
    'opcache_enabled' => is_array($st) ? $st['opcache_enabled'] : null,
    'upload_max_filesize' => ini_get('upload_max_filesize'),
]);
