<?php
header('Content-Type: application/json');
$keys = ['HTTPS', 'SSL_PROTOCOL', 'SSL_CIPHER', 'REQUEST_SCHEME', 'SERVER_PROTOCOL', 'REQUEST_METHOD', 'SERVER_PORT', 'HTTP_HOST'];
$out = [];
foreach ($keys as $k) $out[$k] = $_SERVER[$k] ?? null;
$out['body'] = file_get_contents('php://input');
$out['post'] = $_POST;
echo json_encode($out);
