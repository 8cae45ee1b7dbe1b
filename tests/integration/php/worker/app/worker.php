<?php
// Worker-mode fixture: boots once, then serves every non-static request.
// Each endpoint reports what a request sees, so that tests can check that
// nothing of request N is visible in request N+1 (see test_worker.py).

// An ini change made while booting is the worker's baseline.
ini_set('date.timezone', 'Pacific/Auckland');

$bootPid = getmypid();
$bootTime = microtime(true);
$bootWorkerFlag = [
    'frankenphp' => $_SERVER['FRANKENPHP_WORKER'] ?? null,
    'tusk' => $_SERVER['TUSK_WORKER'] ?? null,
];
$baseline = [
    'ob_level' => ob_get_level(),
    'memory_limit' => ini_get('memory_limit'),
    'max_execution_time' => ini_get('max_execution_time'),
];
$handled = 0;          // requests this process served (kept across requests on purpose)
$leak = [];            // /leak grows it: memory that stays with the process
$afterFinish = null;   // what /finish did after the response was sent

function report(): array
{
    $files = [];
    foreach ($_FILES as $k => $f) {
        $files[$k] = ['name' => $f['name'], 'tmp_name' => $f['tmp_name'], 'size' => $f['size']];
    }
    return [
        'pid' => getmypid(),
        'uri' => $_SERVER['REQUEST_URI'] ?? null,
        'method' => $_SERVER['REQUEST_METHOD'] ?? null,
        'query_string' => $_SERVER['QUERY_STRING'] ?? null,
        'get' => $_GET,
        'post' => $_POST,
        'cookie' => $_COOKIE,
        'request' => $_REQUEST,
        'files' => $files,
        'input' => file_get_contents('php://input'),
        'http_x_custom' => $_SERVER['HTTP_X_CUSTOM'] ?? null,
        'polluted_server' => $_SERVER['POLLUTED'] ?? null,
        'headers_list' => headers_list(),
        'response_code' => http_response_code(),
        'ob_level' => ob_get_level(),
        'session_status' => session_status(),
        'session_id' => session_id(),
        'session' => $_SESSION ?? null,
        'memory_limit' => ini_get('memory_limit'),
        'max_execution_time' => ini_get('max_execution_time'),
        'timezone' => ini_get('date.timezone'),
        'frankenphp_worker' => $_SERVER['FRANKENPHP_WORKER'] ?? null,
        'tusk_worker' => $_SERVER['TUSK_WORKER'] ?? null,
    ];
}

function json_out($data): void
{
    header('Content-Type: application/json');
    echo json_encode($data);
}

$handler = static function () use (&$handled, &$leak, &$afterFinish, $bootPid, $bootTime, $bootWorkerFlag, $baseline) {
    $handled++;
    $path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
    switch ($path) {
        case '/info':
            $r = report();
            $r['handled'] = $handled;
            $r['boot_pid'] = $bootPid;
            $r['boot_time'] = $bootTime;
            $r['boot_worker_flag'] = $bootWorkerFlag;
            $r['baseline'] = $baseline;
            $r['after_finish'] = $afterFinish;
            json_out($r);
            return;
        case '/set-header':
            header('X-Leak: from-request-n');
            header('Cache-Control: private, max-age=99');
            setcookie('leaky', 'n');
            json_out(report());
            return;
        case '/pollute':
            // A handler that writes into the superglobals.
            $_SERVER['POLLUTED'] = 'yes';
            $_GET['polluted'] = '1';
            $_POST['polluted'] = '1';
            $_COOKIE['polluted'] = '1';
            $_REQUEST['polluted'] = '1';
            $_FILES['polluted'] = ['name' => 'x', 'tmp_name' => '/etc/passwd', 'size' => 1];
            json_out(report());
            return;
        case '/session-start':
            session_start();
            $_SESSION['secret'] = $_GET['v'] ?? 'request-n';
            // No session_write_close(): classic PHP writes it at the end of the request.
            json_out(['id' => session_id(), 'session' => $_SESSION, 'pid' => getmypid()]);
            return;
        case '/session-peek':
            session_start();
            json_out(['id' => session_id(), 'session' => $_SESSION, 'pid' => getmypid()]);
            return;
        case '/upload':
            $out = [];
            foreach ($_FILES as $k => $f) {
                $out[$k] = [
                    'name' => $f['name'],
                    'size' => $f['size'],
                    'tmp_name' => $f['tmp_name'],
                    'exists' => file_exists($f['tmp_name']),
                    'is_uploaded' => is_uploaded_file($f['tmp_name']),
                    'md5' => md5_file($f['tmp_name']),
                ];
            }
            json_out(['files' => $out, 'pid' => getmypid()]);
            return;
        case '/exists':
            $p = $_GET['path'] ?? '';
            json_out(['exists' => file_exists($p), 'is_uploaded' => is_uploaded_file($p), 'pid' => getmypid()]);
            return;
        case '/ob-leak':
            // Buffers opened and never closed.
            ob_start();
            echo "buffered-one;";
            ob_start();
            echo "buffered-two;";
            return;
        case '/status404':
            http_response_code(404);
            echo "not here";
            return;
        case '/ini-change':
            ini_set('memory_limit', '345M');
            set_time_limit(7);
            ini_set('date.timezone', 'America/Lima');
            json_out(['memory_limit' => ini_get('memory_limit'), 'max_execution_time' => ini_get('max_execution_time'),
                      'timezone' => ini_get('date.timezone')]);
            return;
        case '/throw':
            throw new RuntimeException('boom from the handler ' . getmypid());
        case '/die':
            echo "bye";
            exit();
        case '/redirect-exit':
            // The classic PHP redirect idiom.
            header('Location: /elsewhere');
            exit;
        case '/finish':
            $ns = isset($_GET['ns']);
            header('Content-Type: text/plain');
            echo "finished-early";
            $ok = $ns ? \Tusk\finish_request() : frankenphp_finish_request();
            echo "never sent";
            usleep(500000);
            $afterFinish = ['ok' => $ok, 'at' => microtime(true)];
            return;
        case '/hints':
            header('Link: </style.css>; rel=preload; as=style');
            $ns = isset($_GET['ns']);
            $r = $ns ? \Tusk\headers_send(103) : headers_send(103);
            usleep(300000); // the client must have the hints before the final response exists
            header('Link: </app.js>; rel=preload; as=script', false);
            header('Content-Type: text/plain');
            echo "final body after hints ($r)";
            return;
        case '/request-headers':
            json_out([
                'frankenphp' => frankenphp_request_headers(),
                'tusk' => \Tusk\request_headers(),
                'getallheaders' => getallheaders(),
            ]);
            return;
        case '/functions':
            $names = ['frankenphp_handle_request', 'frankenphp_finish_request', 'frankenphp_request_headers',
                      'headers_send', 'Tusk\handle_request', 'Tusk\finish_request', 'Tusk\request_headers',
                      'Tusk\headers_send'];
            $out = [];
            foreach ($names as $n) {
                $out[$n] = function_exists($n);
            }
            json_out($out);
            return;
        case '/leak':
            $leak[] = str_repeat(chr(65 + count($leak) % 26), 2 * 1024 * 1024);
            json_out(['pid' => getmypid(), 'memory' => memory_get_usage(), 'chunks' => count($leak)]);
            return;
        case '/spin': // burns ?ms of CPU time (what max_execution_time counts on Linux)
            $cpu = static function (): float {
                $u = getrusage();
                return $u['ru_utime.tv_sec'] + $u['ru_utime.tv_usec'] / 1e6 + $u['ru_stime.tv_sec'] + $u['ru_stime.tv_usec'] / 1e6;
            };
            $end = $cpu() + (int)($_GET['ms'] ?? 100) / 1000;
            $n = 0;
            while ($cpu() < $end) {
                $n++;
            }
            json_out(['pid' => getmypid(), 'n' => $n]);
            return;
        case '/sleep':
            usleep((int)($_GET['ms'] ?? 100) * 1000);
            json_out(['pid' => getmypid()]);
            return;
        default:
            json_out(['route' => 'default', 'uri' => $_SERVER['REQUEST_URI'], 'pid' => getmypid(),
                      'handled' => $handled]);
            return;
    }
};

while (frankenphp_handle_request($handler)) {
    gc_collect_cycles();
}
