<?php
// Reports what PHP saw of the request, as JSON.
header('Content-Type: application/json');
$files = [];
foreach ($_FILES as $k => $f) {
    $files[$k] = ['name' => $f['name'], 'type' => $f['type'], 'size' => $f['size'], 'error' => $f['error'],
                  'sha1' => $f['error'] === 0 ? sha1_file($f['tmp_name']) : null];
}
echo json_encode([
    'protocol' => $_SERVER['SERVER_PROTOCOL'],
    'method' => $_SERVER['REQUEST_METHOD'],
    'uri' => $_SERVER['REQUEST_URI'],
    'host' => $_SERVER['HTTP_HOST'] ?? null,
    'get' => $_GET,
    'post' => $_POST,
    'cookie' => $_COOKIE,
    'http_cookie' => $_SERVER['HTTP_COOKIE'] ?? null,
    'files' => $files,
    'input' => file_get_contents('php://input'),
    'content_type' => $_SERVER['CONTENT_TYPE'] ?? null,
    'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null,
    'x_test' => $_SERVER['HTTP_X_TEST'] ?? null,
    'pid' => getmypid(),
]);
