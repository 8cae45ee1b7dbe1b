<?php
// Workerman WebSocket server for bench/ws.sh (optional; enabled by WORKERMAN_DIR):
// the same behaviour as bench/app/ws_app.php.
//
//   WORKERMAN_DIR=/path/to/workerman php8.2 bench/workerman/ws.php start
//
// Environment:
//   WORKERMAN_DIR     Workerman checkout (src/Worker.php, v5), old checkout with
//                     Autoloader.php (v4), or a Composer project (vendor/autoload.php)
//   WORKERMAN_LISTEN  host:port to listen on            (default 127.0.0.1:18091)
//   WORKERMAN_PROCS   worker processes                  (default 2)
//   WORKERMAN_RUNDIR  where pid/log files go            (default sys_get_temp_dir())
//
// Echoes every message; "broadcast PAYLOAD" sends PAYLOAD to every
// connection of this process ($worker->connections, the idiomatic
// Workerman broadcast). Workerman has no broadcast across processes
// without an extra server (Channel, GatewayWorker), so bench/ws.sh compares
// broadcasts with one process on each side.

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
    fwrite(STDERR, "ws.php: WORKERMAN_DIR='$dir' has no vendor/autoload.php, src/Worker.php or Autoloader.php\n");
    exit(1);
}

use Workerman\Worker;

$listen = getenv('WORKERMAN_LISTEN') ?: '127.0.0.1:18091';
$procs = (int) (getenv('WORKERMAN_PROCS') ?: 2);
$run = getenv('WORKERMAN_RUNDIR') ?: sys_get_temp_dir();

Worker::$pidFile = "$run/workerman-ws.pid";
Worker::$logFile = "$run/workerman-ws.log";
Worker::$stdoutFile = "$run/workerman-ws.stdout";
Worker::$daemonize = false;

$worker = new Worker("websocket://$listen");
$worker->name = 'tusk-wsbench';
$worker->count = $procs;
$worker->reusePort = true;

$worker->onMessage = static function ($connection, string $msg) use ($worker): void {
    if (str_starts_with($msg, 'broadcast ')) {
        $payload = substr($msg, 10);
        foreach ($worker->connections as $c) {
            $c->send($payload);
        }
        return;
    }
    $connection->send($msg);
};

Worker::runAll();
