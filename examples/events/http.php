<?php
// An HTTP service in the event loop (Workerman's http:// protocol):
//
//   build/tusk run examples/events/http.php
//   curl 'http://127.0.0.1:8081/hello?name=you'
//   curl -d 'text=hi' http://127.0.0.1:8081/notes && curl http://127.0.0.1:8081/notes
//
// State lives in the worker process (here: a notes list per worker); keep
// what all workers must share in APCu, a database or Redis.
use Tusk\Connection;
use Tusk\Http\Request;
use Tusk\Http\Response;
use Tusk\Worker;

$notes = [];
$http = new Worker('http://127.0.0.1:8081');
$http->name = 'notes';
$http->onMessage = function (Connection $c, Request $r) use (&$notes) {
    switch ($r->path()) {
        case '/hello':
            $c->send('Hello, ' . htmlspecialchars($r->get('name', 'world')) . "!\n");
            return;
        case '/notes':
            if ($r->method() === 'POST') {
                $notes[] = ['text' => (string)$r->post('text', ''), 'at' => date(DATE_ATOM)];
                $c->send(new Response(201, ['Content-Type' => 'application/json'], json_encode(end($notes))));
                return;
            }
            $c->send(new Response(200, ['Content-Type' => 'application/json'], json_encode($notes)));
            return;
    }
    $c->send(new Response(404, ['Content-Type' => 'text/plain'], "not found\n"));
};

Worker::runAll();
