<?php
// Reports the request superglobals, php://input (read twice) and getallheaders().
header('Content-Type: application/json');
$in1 = file_get_contents('php://input');
$in2 = file_get_contents('php://input');
echo json_encode([
    'get' => $_GET,
    'post' => $_POST,
    'cookie' => $_COOKIE,
    'request' => $_REQUEST,
    'files' => $_FILES,
    'input1' => $in1,
    'input2' => $in2,
    'json' => json_decode($in1, true),
    'headers' => getallheaders(),
    'method' => $_SERVER['REQUEST_METHOD'],
]);
