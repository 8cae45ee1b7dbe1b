<?php
// Workerman comparison server for bench/run.sh (optional; enabled by WORKERMAN_DIR).
//
//   WORKERMAN_DIR=/path/to/workerman php8.2 bench/workerman/start.php start
//
// Environment:
//   WORKERMAN_DIR     Workerman checkout (src/Worker.php, v5), old checkout with
//                     Autoloader.php (v4), or a Composer project (vendor/autoload.php)
//   WORKERMAN_LISTEN  host:port to listen on            (default 127.0.0.1:18082)
//   WORKERMAN_PROCS   worker processes                  (default 2)
//   WORKERMAN_RUNDIR  where pid/log files go            (default sys_get_temp_dir())
//
// Serves the same three endpoints as bench/app with the idiomatic Workerman
// model (handlers in a long-lived process, no per-request script execution).
// /json.php mirrors bench/app/json.php exactly; run.sh checks the bytes.

declare(strict_types=1);

$dir = rtrim((string) getenv('WORKERMAN_DIR'), '/');
if ($dir !== '' && is_file("$dir/vendor/autoload.php")) {
    require "$dir/vendor/autoload.php";
} elseif ($dir !== '' && is_file("$dir/src/Worker.php")) {
    spl_autoload_register(static function (string $class) use ($dir): void {
        if (str_starts_with($class, 'Workerman\\')) {
            $file = "$dir/src/" . str_replace('\\', '/', substr($class, 10)) . '.php';
            if (is_file($file)) {
                require $file;
            }
        }
    });
} elseif ($dir !== '' && is_file("$dir/Autoloader.php")) {
    require "$dir/Autoloader.php";
} else {
    fwrite(STDERR, "start.php: WORKERMAN_DIR='$dir' has no vendor/autoload.php, src/Worker.php or Autoloader.php\n");
    exit(1);
}

use Workerman\Protocols\Http\Request;
use Workerman\Protocols\Http\Response;
use Workerman\Worker;

$listen = getenv('WORKERMAN_LISTEN') ?: '127.0.0.1:18082';
$procs = (int) (getenv('WORKERMAN_PROCS') ?: 2);
$run = getenv('WORKERMAN_RUNDIR') ?: sys_get_temp_dir();
$static = dirname(__DIR__) . '/app/static/4k.txt';

Worker::$pidFile = "$run/workerman.pid";
Worker::$logFile = "$run/workerman.log";
Worker::$stdoutFile = "$run/workerman.stdout";
Worker::$daemonize = false;

$worker = new Worker("http://$listen");
$worker->name = 'tusk-bench';
$worker->count = $procs;
$worker->reusePort = true;

$worker->onMessage = static function ($connection, Request $request) use ($static): void {
    switch ($request->path()) {
        case '/hello.php':
            $connection->send(new Response(200, ['Content-Type' => 'text/html; charset=UTF-8'], 'Hello, World!'));
            return;

        case '/json.php':
            $items = [];
            for ($i = 1; $i <= 100; $i++) {
                $items[] = [
                    'id' => $i,
                    'name' => "User $i",
                    'email' => "user$i@example.com",
                    'active' => $i % 3 !== 0,
                ];
            }
            $connection->send(new Response(200, ['Content-Type' => 'application/json'], json_encode($items)));
            return;

        case '/static/4k.txt':
            $connection->send((new Response(200, ['Content-Type' => 'text/plain']))->withFile($static));
            return;

        case '/opcache.php':
            $s = function_exists('opcache_get_status') ? @opcache_get_status(false) : false;
            $connection->send(new Response(200, [], is_array($s) && !empty($s['opcache_enabled']) ? 'on' : 'off'));
            return;

        case '/extensions.php': // as app/extensions.php
            $e = get_loaded_extensions();
            $z = get_loaded_extensions(true);
            sort($e);
            sort($z);
            $connection->send(new Response(200, [], count($e) . ' ' . count($z) . ' ' . implode(',', array_merge($e, $z))));
            return;
    }
    $connection->send(new Response(404, [], 'Not Found'));
};

Worker::runAll();
