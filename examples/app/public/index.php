<?php
// The example app: a front controller that routes a few paths.
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
switch ($path) {
    case '/':
        header('Content-Type: text/html; charset=utf-8');
        $name = htmlspecialchars($_GET['name'] ?? 'world');
        echo "<!DOCTYPE html><title>Tusk</title><h1>Hello, {$name}!</h1>";
        echo '<p>Served by ' . htmlspecialchars($_SERVER['SERVER_SOFTWARE']) . ' with PHP ' . PHP_VERSION . '.</p>';
        echo '<ul><li><a href="/api/time">/api/time</a> (JSON)</li><li><a href="/counter">/counter</a> (session)</li>';
        echo '<li><a href="/style.css">/style.css</a> (static)</li></ul>';
        echo '<form method="post" action="/echo"><input name="msg"><button>Send</button></form>';
        break;
    case '/api/time':
        header('Content-Type: application/json');
        echo json_encode(['time' => date(DATE_ATOM), 'pid' => getmypid()]);
        break;
    case '/counter':
        session_start();
        $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
        echo "You have been here {$_SESSION['n']} time(s).";
        break;
    case '/echo':
        header('Content-Type: text/plain');
        echo 'You said: ', $_POST['msg'] ?? '';
        break;
    default:
        http_response_code(404);
        echo 'Not found: ', htmlspecialchars($path);
}
