<?php
// The WebSocket app of bench/ws.sh:
//
//   WS_PORT=18090 build/tusk run bench/app/ws_app.php --workers 2
//
// Echoes every message; "broadcast PAYLOAD" sends PAYLOAD to every
// connection of every service (Tusk\Server::broadcast: the master encodes
// and writes it to each connection, whichever worker holds it).
use Tusk\Connection;
use Tusk\Server;
use Tusk\Worker;

$port = (int) (getenv('WS_PORT') ?: 18090);

$ws = new Worker("websocket://127.0.0.1:$port");
$ws->name = 'wsbench';
$ws->onMessage = static function (Connection $c, string $msg): void {
    if (str_starts_with($msg, 'broadcast ')) {
        Server::broadcast(substr($msg, 10));
        return;
    }
    $c->send($msg);
};

Worker::runAll();
