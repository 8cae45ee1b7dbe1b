<?php
// getenv() sees the request variables under php-fpm (FastCGI params).
header('Content-Type: application/json');
echo json_encode([
    'REQUEST_METHOD' => getenv('REQUEST_METHOD'),
    'HTTP_HOST' => getenv('HTTP_HOST'),
    'HTTP_X_TRACE' => getenv('HTTP_X_TRACE'),
    'SCRIPT_NAME' => getenv('SCRIPT_NAME'),
    'auth_user' => $_SERVER['PHP_AUTH_USER'] ?? null,
    'auth_pw' => $_SERVER['PHP_AUTH_PW'] ?? null,
    'http_auth' => $_SERVER['HTTP_AUTHORIZATION'] ?? null,
]);
