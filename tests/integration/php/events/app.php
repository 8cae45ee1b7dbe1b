<?php
// The fixture of test_events.py: one service per framing, commands as messages.
use Tusk\Connection;
use Tusk\Server;
use Tusk\Timer;
use Tusk\Worker;

/** "LEN:payload" messages: a protocol written in PHP (Workerman's input/decode/encode). */
class LenProto
{
    public static function input(string $buf, Connection $c): int
    {
        $p = strpos($buf, ':');
        if ($p === false) {
            return strlen($buf) > 10 ? -1 : 0;
        }
        return $p + 1 + (int)substr($buf, 0, $p);
    }
    public static function decode(string $msg, Connection $c): string { return substr($msg, strpos($msg, ':') + 1); }
    public static function encode(string $data, Connection $c): string { return strlen($data) . ':' . $data; }
}

$mark = getenv('TUSK_TEST_MARK') ?: '/dev/null';
$handler = function (Connection $c, string $data) use ($mark) {
    $c->seen = ($c->seen ?? 0) + 1; // dynamic property: lives in this worker
    [$cmd, $arg] = array_pad(explode(' ', $data, 2), 2, '');
    switch ($cmd) {
        case 'pid': $c->send((string)getmypid()); break;
        case 'hog': usleep(200); break; // a slow handler (flood tests); no answer
        case 'id': $c->send((string)$c->id); break;
        case 'remote': $c->send($c->getRemoteIp() . ' ' . $c->getRemotePort()); break;
        case 'join': $c->joinGroup($arg); $c->send("joined $arg"); break;
        case 'leave': $c->leaveGroup($arg); $c->send("left $arg"); break;
        case 'group': [$g, $m] = explode(' ', $arg, 2); Server::sendToGroup($g, $m); break;
        case 'bind': $c->bindUid($arg); $c->send("bound $arg"); break;
        case 'touid': [$u, $m] = explode(' ', $arg, 2); Server::sendToUid($u, $m); break;
        case 'all': Server::broadcast($arg); break;
        case 'service': $c->worker->broadcast($arg); break;
        case 'once': Timer::add((float)$arg, fn() => $c->send('once fired'), [], false); $c->send('armed'); break;
        case 'every':
            $n = 0;
            $id = null;
            $id = Timer::add((float)$arg, function () use ($c, &$n, &$id) {
                $c->send('tick ' . ++$n);
                if ($n === 3) { Timer::del($id); }
            });
            break;
        case 'flood':
            // Far more than the 1 MiB send bound: onBufferFull must fire.
            $chunk = str_repeat('x', 65536);
            for ($i = 0; $i < (int)$arg; $i++) { $c->send($chunk); }
            break;
        case 'pause': $c->pauseRecv(); Timer::add((float)$arg, fn() => $c->resumeRecv(), [], false); $c->send('paused'); break;
        case 'close': $c->close('bye'); break;
        case 'throw': throw new RuntimeException('thrown on purpose');
        case 'seen': $c->send((string)$c->seen); break;
        case 'fetch':
            // An async client from this worker to a text:// address: ask, relay, close.
            $k = new Tusk\AsyncTcpConnection('text://127.0.0.1:' . $arg);
            $k->onConnect = fn($k) => $k->send('remote');
            $k->onMessage = function ($k, $m) use ($c) {
                if (str_starts_with($m, 'hello ')) { return; } // the greeting
                $c->send('via client: ' . $m);
                $k->close();
            };
            $k->onClose = fn($k) => $c->send('client closed');
            $k->onError = fn($k, $code, $why) => $c->send('client error: ' . $why);
            $k->connect();
            break;
        case 'wsfetch':
            $k = new Tusk\AsyncTcpConnection('ws://127.0.0.1:' . $arg . '/from-client');
            $k->onMessage = function ($k, $m) use ($c) {
                if (str_starts_with($m, 'welcome ')) { $k->send(str_repeat('w', 60000)); return; }
                $c->send('ws client got ' . strlen($m) . ' ' . substr($m, 0, 6));
                $k->close();
            };
            $k->onClose = fn($k) => $c->send('ws client closed');
            $k->onError = fn($k, $code, $why) => $c->send('client error: ' . $why);
            $k->connect();
            break;
        default: $c->send('echo ' . $data);
    }
};

$text = new Worker('text://127.0.0.1:0');
$text->name = 'text';
$text->onConnect = fn(Connection $c) => $c->send('hello ' . $c->id);
$text->onMessage = $handler;
$text->onBufferFull = function (Connection $c) use ($mark) { file_put_contents($mark, "full {$c->id}\n", FILE_APPEND); };
$text->onBufferDrain = function (Connection $c) use ($mark) { file_put_contents($mark, "drain {$c->id}\n", FILE_APPEND); };
$text->onClose = function (Connection $c) use ($mark) { file_put_contents($mark, "close {$c->id}\n", FILE_APPEND); };
$text->onWorkerStart = function (Worker $w) use ($mark) { file_put_contents($mark, "start {$w->id} " . getmypid() . "\n", FILE_APPEND); };
$text->onWorkerStop = function (Worker $w) use ($mark) { file_put_contents($mark, "stop {$w->id} " . getmypid() . "\n", FILE_APPEND); };

$frame = new Worker('frame://127.0.0.1:0');
$frame->name = 'frame';
$frame->maxPackageSize = 1000;
$frame->onMessage = $handler;
$frame->onError = function (Connection $c, $code, $msg) use ($mark) { file_put_contents($mark, "error {$c->id} $msg\n", FILE_APPEND); };

$len = new Worker('tcp://127.0.0.1:0');
$len->name = 'len';
$len->protocol = LenProto::class;
$len->onMessage = $handler;

if ($path = getenv('TUSK_TEST_UNIX')) {
    $unix = new Worker('unix://' . $path);
    $unix->name = 'unix';
    $unix->onMessage = fn(Connection $c, string $d) => $c->send('unix got ' . $d);
}

$ws = new Worker('websocket://127.0.0.1:0');
$ws->name = 'ws';
$ws->allowedOrigins = ['https://good.example', 'https://*.tusk.test'];
$ws->maxPackageSize = 65536;
$ws->onWebSocketConnect = function (Connection $c, string $head) {
    $c->path = explode(' ', $head)[1] ?? '';
};
$ws->onConnect = fn(Connection $c) => $c->send('welcome ' . $c->id . ' ' . $c->path);
$ws->onMessage = function (Connection $c, string $data) use ($handler) {
    if ($c->lastMessageBinary) {
        // A binary message comes back binary, whatever its bytes (an echo keeps the type).
        $c->websocketType = Connection::BINARY;
        $c->send('bin ' . $data);
        $c->websocketType = 0;
        return;
    }
    if ($data === 'binary') {
        $c->websocketType = Connection::BINARY;
        $c->send("\x00\x01\xff");
        $c->websocketType = 0;
        return;
    }
    if ($data === 'big') {
        $c->send(str_repeat('z', 200000));
        return;
    }
    $handler($c, $data);
};
$ws->onClose = function (Connection $c) use ($mark) { file_put_contents($mark, "wsclose {$c->id}\n", FILE_APPEND); };

$udp = new Worker('udp://127.0.0.1:0');
$udp->name = 'udp';
$udp->onMessage = function ($c, string $data) {
    $c->send($data === 'pid' ? (string)getmypid() : 'udp ' . $data . ' from ' . $c->getRemoteIp());
};

// http://: Workerman's Request/Response API.
$http = new Worker('http://127.0.0.1:0');
$http->name = 'http';
$http->maxPackageSize = 256 * 1024;
$http->onMessage = function (Connection $c, Tusk\Http\Request $r) {
    switch ($r->path()) {
        case '/hello':
            $c->send('Hello, World!');
            return;
        case '/info':
            $files = [];
            foreach ($r->file() as $k => $f) {
                $files[$k] = ['name' => $f['name'], 'size' => $f['size'], 'type' => $f['type'],
                              'sha1' => sha1_file($f['tmp_name']), 'tmp' => $f['tmp_name']];
            }
            $c->send(new Tusk\Http\Response(200, ['Content-Type' => 'application/json', 'X-Pid' => getmypid()],
                json_encode(['method' => $r->method(), 'uri' => $r->uri(), 'path' => $r->path(),
                    'query' => $r->queryString(), 'get' => $r->get(), 'post' => $r->post(), 'cookie' => $r->cookie(),
                    'headers' => $r->header(), 'x' => $r->header('X-Test', 'none'), 'host' => $r->host(true),
                    'version' => $r->protocolVersion(), 'files' => $files, 'body_len' => strlen($r->rawBody()),
                    'body_sha1' => sha1($r->rawBody())], JSON_INVALID_UTF8_SUBSTITUTE)));
            return;
        case '/big':
            $c->send(str_repeat('0123456789abcdef', 65536)); // 1 MiB
            return;
        case '/cookie':
            $c->send((new Tusk\Http\Response(201))->cookie('sid', 'a b', 60, '/', '', false, true)
                ->withHeader('X-Multi', ['one', 'two'])->withBody('made'));
            return;
        case '/later': // answered later, from a timer
            Timer::add(0.1, function () use ($c, $r) { $c->send('later ' . $r->get('n')); }, [], false);
            return;
        case '/throw':
            throw new RuntimeException('http handler failed');
        case '/pid':
            $c->send((string)getmypid());
            return;
    }
    $c->send(new Tusk\Http\Response(404, [], "not found\n"));
};

Worker::runAll();
