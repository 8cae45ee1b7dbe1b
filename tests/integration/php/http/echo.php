<?php
// Reports what PHP saw of the request, as JSON.
header('Content-Type: application/json');
echo json_encode([
    'method' => $_SERVER['REQUEST_METHOD'],
    'uri' => $_SERVER['REQUEST_URI'],
    'query' => $_SERVER['QUERY_STRING'],
    'get' => $_GET,
    'post' => $_POST,
    'input' => file_get_contents('php://input'),
    'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null,
    'content_type' => $_SERVER['CONTENT_TYPE'] ?? null,
    'protocol' => $_SERVER['SERVER_PROTOCOL'],
    'host' => $_SERVER['HTTP_HOST'] ?? null,
    'remote_port' => $_SERVER['REMOTE_PORT'] ?? null,
]);
