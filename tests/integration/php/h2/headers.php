<?php
// Headers with mixed case, cookies, and connection-specific headers that
// HTTP/2 must not carry.
header('X-Mixed-Case: Value1');
header('X-Multi: one');
header('X-Multi: two', false);
header('Connection: keep-alive');
header('Keep-Alive: timeout=5');
header('Upgrade: websocket');
header('Transfer-Encoding: chunked');
header('Proxy-Connection: keep-alive');
setcookie('sess', 'abc123', ['path' => '/', 'httponly' => true]);
setcookie('theme', 'dark');
http_response_code(201);
echo "headers body";
