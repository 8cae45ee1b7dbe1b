<?php
// One case per ?case=...
switch ($_GET['case'] ?? '') {
    case 'custom':
        header('X-Custom: hello');
        header('Content-Type: text/x-custom; charset=utf-8');
        header('X-B: 1');
        header('X-B: 2');            // replaces
        header('X-A: 1', false);
        header('X-A: 2', false);     // adds
        echo 'custom';
        break;
    case 'cookies':
        setcookie('plain', 'v1');
        setcookie('full', 'a b&c', [
            'expires' => 2000000000,
            'path' => '/p',
            'domain' => 'example.test',
            'secure' => true,
            'httponly' => true,
            'samesite' => 'Strict',
        ]);
        setrawcookie('raw', 'x%20y');
        echo 'cookies';
        break;
    case 'code':
        http_response_code((int)$_GET['code']);
        echo 'code ', http_response_code();
        break;
    case 'location':
        header('Location: /x');
        echo 'moved';
        break;
    case 'location301':
        header('Location: /y', true, 301);
        break;
    case 'statusline':
        header('HTTP/1.1 404 Not Found');
        echo 'nope';
        break;
    case 'customreason':
        header('HTTP/1.1 404 Gone Fishing');
        echo 'fishing';
        break;
    case 'sent':
        while (ob_get_level()) ob_end_flush();
        $before = headers_sent();
        header('X-Early: 1');
        echo 'a';
        flush();
        $after = headers_sent($file, $line);
        header('X-Late: 1');
        echo json_encode(['before' => $before, 'after' => $after, 'line' => $line]);
        break;
    case 'cgistatus':
        // The CGI way to set the status; php-fpm + nginx honour it.
        header('Status: 404 Not Found');
        echo 'cgi';
        break;
    case 'nocontent':
        http_response_code(204);
        echo 'dropped';
        break;
    default:
        http_response_code(400);
}
