<?php
// Tusk's event-driven PHP runtime (tusk run app.php). Loaded by Tusk before
// the application script in every process of `tusk run`; the C side
// (src/php/app.c, src/proc/app_master.c) holds the sockets, this file holds
// the PHP-facing API: Tusk\Worker, Tusk\Connection, Tusk\Timer.
// Documented in docs/event-servers.md.
namespace Tusk;

/** A service: a listener and its callbacks (Workerman-style). */
#[\AllowDynamicProperties]
class Worker
{
    /** @var Worker[] in declaration order; the index is the service number */
    public static array $workers = [];
    /** true in the process that only reads the declarations */
    public static bool $probing = false;
    private static bool $running = false;

    public string $name = 'none';
    /** Worker processes: set by `tusk run --workers N` for all services; kept for Workerman code. */
    public int $count = 1;
    /** This process's worker number (0..N-1), set before onWorkerStart. */
    public int $id = 0;
    /** Class with static input()/decode()/encode() (Workerman protocol classes) for tcp:// services. */
    public ?string $protocol = null;
    /** Connections this process has seen, by id. */
    public array $connections = [];
    public $onWorkerStart = null;
    public $onWorkerStop = null;
    public $onConnect = null;
    public $onMessage = null;
    public $onClose = null;
    public $onError = null;
    public $onBufferFull = null;
    public $onBufferDrain = null;
    /** websocket://: called after the handshake, before onConnect, with the request head. */
    public $onWebSocketConnect = null;
    /** Largest message for text://, frame:// and websocket:// (bytes); bigger ones close the connection. */
    public int $maxPackageSize = 1048576;
    /**
     * websocket://: the Origin values a browser may connect from ('https://app.example.com',
     * 'https://*.example.com', '*'); others get 403 before PHP sees them. Empty: any.
     */
    public array $allowedOrigins = [];
    public int $index;
    /** @internal http:// service: onMessage gets a Tusk\Http\Request */
    public bool $isHttp = false;

    public function __construct(public string $listen = '', public array $context = [])
    {
        $this->index = count(self::$workers);
        $this->isHttp = strncasecmp($listen, 'http://', 7) === 0;
        self::$workers[] = $this;
    }

    /** Starts every declared service; returns when this process stops. */
    public static function runAll(): void
    {
        if (self::$running) {
            return;
        }
        self::$running = true;
        $decl = [];
        foreach (self::$workers as $w) {
            $decl[] = [$w->listen, $w->name, $w->protocol !== null ? 1 : 0, $w->maxPackageSize,
                implode("\n", array_map('strval', $w->allowedOrigins))];
        }
        $role = Internal\app_declare($decl);
        if ($role < 0) {
            self::$probing = true;
            return;
        }
        Loop::run($role);
    }

    /** Sends to every connection of this service (all processes). */
    public function broadcast(string $data): void
    {
        Internal\app_cmd(Loop::CMD_BCAST, $this->index, $data);
    }
}

/** One client connection, held by Tusk's C side: it outlives a worker process. */
#[\AllowDynamicProperties]
class Connection
{
    public const BINARY = 1;
    public string $buffer = '';
    /** websocket://: true when the message onMessage is handling came as a binary one (false: text). */
    public bool $lastMessageBinary = false;
    /** @internal http://: [keep-alive, HEAD] of each request not yet answered, oldest first */
    public array $httpPending = [];
    private bool $closed = false;

    public function __construct(public int $id, public Worker $worker, private string $remote)
    {
    }

    /**
     * Queues data for the client (framed by the service's protocol). On an
     * http:// service: the response to the oldest unanswered request, a
     * Tusk\Http\Response or a string (200, text/html).
     */
    public function send(mixed $data, bool $raw = false): bool
    {
        if ($this->closed) {
            return false;
        }
        if ($this->worker->isHttp && !$raw) {
            return $this->sendHttp($data);
        }
        $data = (string)$data;
        if (!$raw && $this->worker->protocol !== null) {
            $data = ($this->worker->protocol)::encode($data, $this);
        }
        Internal\app_cmd($raw ? Loop::CMD_SEND_RAW : (($this->websocketType ?? 0) === self::BINARY ? Loop::CMD_SEND_BIN : Loop::CMD_SEND), $this->id, $data);
        return true;
    }

    /** Closes after sending $data, if given. */
    public function close(?string $data = null): void
    {
        if ($data !== null) {
            $this->send($data);
        }
        if (!$this->closed) {
            Internal\app_cmd(Loop::CMD_CLOSE, $this->id, '');
        }
    }

    public function pauseRecv(): void { Internal\app_cmd(Loop::CMD_PAUSE, $this->id, ''); }
    public function resumeRecv(): void { Internal\app_cmd(Loop::CMD_RESUME, $this->id, ''); }
    public function joinGroup(string $group): void { Internal\app_cmd(Loop::CMD_JOIN, $this->id, $group); }
    public function leaveGroup(string $group): void { Internal\app_cmd(Loop::CMD_LEAVE, $this->id, $group); }
    /** Ties this connection to a user id (one user, several connections); Server::sendToUid() reaches them all. */
    public function bindUid(string $uid): void { Internal\app_cmd(Loop::CMD_BIND, $this->id, $uid); }

    public function getRemoteAddress(): string { return $this->remote; }
    public function getRemoteIp(): string
    {
        $p = strrpos($this->remote, ':');
        return trim($p === false ? $this->remote : substr($this->remote, 0, $p), '[]');
    }
    public function getRemotePort(): int
    {
        $p = strrpos($this->remote, ':');
        return $p === false ? 0 : (int)substr($this->remote, $p + 1);
    }

    /** @internal */
    public function markClosed(): void { $this->closed = true; }

    private function sendHttp(mixed $data): bool
    {
        $response = $data instanceof Http\Response ? $data : new Http\Response(200, [], (string)$data);
        [$keepAlive, $head] = array_shift($this->httpPending) ?? [true, false];
        Internal\app_cmd(Loop::CMD_SEND_RAW, $this->id, $response->encode($keepAlive, $head));
        if (!$keepAlive) {
            $this->close();
        }
        return true;
    }
}

/**
 * An outgoing connection from a worker, driven by the worker's event loop:
 * tcp:// (raw), text://, frame:// and ws:// (WebSocket client, text and
 * binary messages, no compression). It lives in this worker process.
 */
#[\AllowDynamicProperties]
class AsyncTcpConnection
{
    public $onConnect = null;
    public $onMessage = null;
    public $onClose = null;
    public $onError = null;
    public int $id;
    /** @var resource|null */
    public $stream = null;
    private string $scheme;
    private string $host;
    private int $port;
    private string $path;
    private string $in = '';
    private string $out = '';
    private int $state = 0; // 0 new, 1 connecting, 2 handshake (ws), 3 open, 4 closing, 5 closed
    private string $key = '';
    private static int $nextId = 1;

    public function __construct(public string $remote)
    {
        $u = parse_url($remote);
        if (!$u || empty($u['scheme']) || empty($u['host']) || empty($u['port'])) {
            throw new \ValueError("Tusk\\AsyncTcpConnection: '$remote' is not SCHEME://HOST:PORT");
        }
        $this->scheme = strtolower($u['scheme']);
        if (!in_array($this->scheme, ['tcp', 'text', 'frame', 'ws'], true)) {
            throw new \ValueError("Tusk\\AsyncTcpConnection: scheme '{$this->scheme}' (tcp, text, frame or ws)");
        }
        $this->host = $u['host'];
        $this->port = (int)$u['port'];
        $this->path = ($u['path'] ?? '/') . (isset($u['query']) ? '?' . $u['query'] : '');
        $this->id = self::$nextId++;
    }

    public function connect(): void
    {
        if ($this->state !== 0) {
            return;
        }
        $errno = 0;
        $errstr = '';
        $s = @stream_socket_client("tcp://{$this->host}:{$this->port}", $errno, $errstr, 0,
            STREAM_CLIENT_CONNECT | STREAM_CLIENT_ASYNC_CONNECT);
        if ($s === false) {
            $this->fail("cannot connect to {$this->remote}: $errstr");
            return;
        }
        stream_set_blocking($s, false);
        $this->stream = $s;
        $this->state = 1;
        Loop::addClient($this);
    }

    public function send(string $data): bool
    {
        if ($this->state >= 4) {
            return false;
        }
        $this->out .= match ($this->scheme) {
            'text' => $data . "\n",
            'frame' => pack('N', strlen($data) + 4) . $data,
            'ws' => self::wsFrame(($this->websocketType ?? 0) === Connection::BINARY ? 2 : 1, $data),
            default => $data,
        };
        return true;
    }

    public function close(): void
    {
        if ($this->state >= 4) {
            return;
        }
        if ($this->scheme === 'ws' && $this->state === 3) {
            $this->out .= self::wsFrame(8, pack('n', 1000));
        }
        $this->state = 4;
        if ($this->out === '') {
            $this->finish();
        }
    }

    /** @internal */
    public function wantsWrite(): bool { return $this->state === 1 || $this->out !== ''; }

    /** @internal the socket is writable */
    public function writable(): void
    {
        if ($this->state === 1) {
            if (@stream_socket_get_name($this->stream, true) === false) {
                $this->fail("cannot connect to {$this->remote}");
                return;
            }
            if ($this->scheme === 'ws') {
                $this->key = base64_encode(random_bytes(16));
                $this->out = "GET {$this->path} HTTP/1.1\r\nHost: {$this->host}:{$this->port}\r\nUpgrade: websocket\r\n"
                    . "Connection: Upgrade\r\nSec-WebSocket-Key: {$this->key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                    . $this->out;
                $this->state = 2;
            } else {
                $this->state = 3;
                if ($this->onConnect) {
                    Loop::call($this->onConnect, [$this]);
                }
            }
        }
        if ($this->out !== '') {
            $n = @fwrite($this->stream, $this->out);
            if ($n === false) {
                $this->fail('write failed');
                return;
            }
            $this->out = (string)substr($this->out, $n);
        }
        if ($this->state === 4 && $this->out === '') {
            $this->finish();
        }
    }

    /** @internal the socket is readable */
    public function readable(): void
    {
        if ($this->state === 1) {
            $this->writable(); // a refused connect shows as readable: report it as such
            if ($this->state === 1 || $this->state === 5) {
                return;
            }
        }
        $d = @fread($this->stream, 65536);
        if ($d === '' || $d === false) {
            if (feof($this->stream) || $d === false) {
                $this->finish();
            }
            return;
        }
        $this->in .= $d;
        if ($this->state === 2) {
            $p = strpos($this->in, "\r\n\r\n");
            if ($p === false) {
                return;
            }
            $head = substr($this->in, 0, $p);
            $this->in = (string)substr($this->in, $p + 4);
            $accept = base64_encode(sha1($this->key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11', true));
            if (!preg_match('~^HTTP/1\.1 101~', $head) || stripos($head, "Sec-WebSocket-Accept: $accept") === false) {
                $this->fail('WebSocket handshake refused: ' . strtok($head, "\r"));
                return;
            }
            $this->state = 3;
            if ($this->onConnect) {
                Loop::call($this->onConnect, [$this]);
            }
        }
        while ($this->state === 3 || $this->state === 4) {
            $msg = $this->next();
            if ($msg === null) {
                break;
            }
            if ($this->onMessage) {
                Loop::call($this->onMessage, [$this, $msg]);
            }
        }
    }

    private ?string $frag = null;

    /** The next whole message in $this->in, or null. */
    private function next(): ?string
    {
        switch ($this->scheme) {
            case 'text':
                $p = strpos($this->in, "\n");
                if ($p === false) {
                    return null;
                }
                $m = rtrim(substr($this->in, 0, $p), "\r");
                $this->in = (string)substr($this->in, $p + 1);
                return $m;
            case 'frame':
                if (strlen($this->in) < 4) {
                    return null;
                }
                $n = unpack('N', $this->in)[1];
                if ($n < 4 || strlen($this->in) < $n) {
                    return null;
                }
                $m = substr($this->in, 4, $n - 4);
                $this->in = (string)substr($this->in, $n);
                return $m;
            case 'ws':
                for (;;) {
                    $l = strlen($this->in);
                    if ($l < 2) {
                        return null;
                    }
                    $b0 = ord($this->in[0]);
                    $n = ord($this->in[1]) & 0x7f;
                    $at = 2;
                    if ($n === 126) {
                        if ($l < 4) {
                            return null;
                        }
                        $n = unpack('n', $this->in, 2)[1];
                        $at = 4;
                    } elseif ($n === 127) {
                        if ($l < 10) {
                            return null;
                        }
                        $n = unpack('J', $this->in, 2)[1];
                        $at = 10;
                    }
                    if ($l < $at + $n) {
                        return null;
                    }
                    $payload = substr($this->in, $at, $n);
                    $this->in = (string)substr($this->in, $at + $n);
                    $op = $b0 & 0x0f;
                    if ($op === 8) {
                        if ($this->state === 3) {
                            $this->out .= self::wsFrame(8, substr($payload, 0, 2));
                        }
                        $this->state = 4;
                        return null;
                    }
                    if ($op === 9) {
                        $this->out .= self::wsFrame(10, $payload);
                        continue;
                    }
                    if ($op === 10) {
                        continue;
                    }
                    $this->frag = $op === 0 ? ($this->frag ?? '') . $payload : $payload;
                    if ($b0 & 0x80) {
                        $m = $this->frag;
                        $this->frag = null;
                        return $m;
                    }
                }
            default:
                $m = $this->in;
                $this->in = '';
                return $m === '' ? null : $m;
        }
    }

    private static function wsFrame(int $op, string $data): string
    {
        $n = strlen($data);
        $h = chr(0x80 | $op);
        if ($n < 126) {
            $h .= chr(0x80 | $n);
        } elseif ($n < 65536) {
            $h .= chr(0x80 | 126) . pack('n', $n);
        } else {
            $h .= chr(0x80 | 127) . pack('J', $n);
        }
        $mask = random_bytes(4);
        return $h . $mask . ($data ^ str_repeat($mask, intdiv($n + 3, 4)));
    }

    private function fail(string $why): void
    {
        if ($this->onError) {
            Loop::call($this->onError, [$this, 1, $why]);
        }
        $this->finish();
    }

    private function finish(): void
    {
        if ($this->state === 5) {
            return;
        }
        $this->state = 5;
        if ($this->stream) {
            @fclose($this->stream);
            $this->stream = null;
        }
        Loop::removeClient($this);
        if ($this->onClose) {
            Loop::call($this->onClose, [$this]);
        }
    }
}

/** The sender of one datagram on a udp:// service: send() answers it. */
#[\AllowDynamicProperties]
class UdpConnection
{
    public function __construct(public Worker $worker, private string $remote)
    {
    }

    public function send(string $data, bool $raw = false): bool
    {
        if (!$raw && $this->worker->protocol !== null) {
            $data = ($this->worker->protocol)::encode($data, $this);
        }
        Internal\app_cmd(Loop::CMD_SENDTO, $this->worker->index, pack('n', strlen($this->remote)) . $this->remote . $data);
        return true;
    }

    public function close(?string $data = null): void
    {
        if ($data !== null) {
            $this->send($data);
        }
    }

    public function getRemoteAddress(): string { return $this->remote; }
    public function getRemoteIp(): string { return trim(substr($this->remote, 0, (int)strrpos($this->remote, ':')), '[]'); }
    public function getRemotePort(): int { return (int)substr($this->remote, (int)strrpos($this->remote, ':') + 1); }
}

/** Sends from anywhere in a `tusk run` process. */
final class Server
{
    public static function sendToGroup(string $group, string $data): void
    {
        Internal\app_cmd(Loop::CMD_SEND_GROUP, 0, pack('n', strlen($group)) . $group . $data);
    }

    public static function sendToUid(string $uid, string $data): void
    {
        Internal\app_cmd(Loop::CMD_SEND_UID, 0, pack('n', strlen($uid)) . $uid . $data);
    }

    /** Every connection of every service. */
    public static function broadcast(string $data): void
    {
        Internal\app_cmd(Loop::CMD_BCAST, 0xffff, $data);
    }
}

/** Timers with millisecond resolution, run by the worker's event loop. */
final class Timer
{
    private static array $timers = [];   // id => [due, interval, callback, args, persistent]
    private static int $next = 1;

    /** Runs $callback every $interval seconds (once when !$persistent); returns the timer id. */
    public static function add(float $interval, callable $callback, array $args = [], bool $persistent = true): int
    {
        if ($interval <= 0) {
            throw new \ValueError('Tusk\Timer::add(): the interval must be above 0 seconds');
        }
        $id = self::$next++;
        self::$timers[$id] = [hrtime(true) + (int)($interval * 1e9), $interval, $callback, $args, $persistent];
        return $id;
    }

    public static function del(int $id): bool
    {
        if (!isset(self::$timers[$id])) {
            return false;
        }
        unset(self::$timers[$id]);
        return true;
    }

    public static function delAll(): void { self::$timers = []; }

    /** @internal milliseconds to the next due timer, -1 when none */
    public static function timeout(): int
    {
        if (!self::$timers) {
            return -1;
        }
        $min = PHP_INT_MAX;
        foreach (self::$timers as $t) {
            $min = min($min, $t[0]);
        }
        return max(0, (int)ceil(($min - hrtime(true)) / 1e6));
    }

    /** @internal */
    public static function runDue(): void
    {
        if (!self::$timers) {
            return;
        }
        $now = hrtime(true);
        foreach (self::$timers as $id => $t) {
            if ($t[0] > $now) {
                continue;
            }
            if ($t[4]) {
                self::$timers[$id][0] = $now + (int)($t[1] * 1e9);
            } else {
                unset(self::$timers[$id]);
            }
            Loop::call($t[2], $t[3]);
        }
    }
}

/** @internal the worker process's event loop. */
final class Loop
{
    // master -> worker (Internal\app_wait() events: [type, connection id, service, data, flags])
    public const EV_OPEN = 20, EV_DATA = 21, EV_CLOSE = 22, EV_FULL = 23, EV_DRAIN = 24, EV_STOP = 25, EV_ERROR = 26;
    // worker -> master (Internal\app_cmd())
    public const CMD_SEND = 41, CMD_CLOSE = 42, CMD_PAUSE = 43, CMD_RESUME = 44, CMD_JOIN = 45, CMD_LEAVE = 46,
        CMD_BIND = 47, CMD_SEND_GROUP = 48, CMD_SEND_UID = 49, CMD_BCAST = 50, CMD_SEND_RAW = 51, CMD_SEND_BIN = 52,
        CMD_SENDTO = 53;
    public const EV_DGRAM = 27;

    /** @var Connection[] by id */
    private static array $conns = [];
    /** @var AsyncTcpConnection[] by id */
    private static array $clients = [];

    public static function addClient(AsyncTcpConnection $c): void { self::$clients[$c->id] = $c; }
    public static function removeClient(AsyncTcpConnection $c): void { unset(self::$clients[$c->id]); }

    public static function call(callable $f, array $args): void
    {
        try {
            $f(...$args);
        } catch (\Throwable $e) {
            error_log(sprintf('Tusk: uncaught %s in a callback: %s in %s:%d', get_class($e), $e->getMessage(),
                $e->getFile(), $e->getLine()));
        }
    }

    private static function conn(int $id, int $svc, string $remote = ''): ?Connection
    {
        if (isset(self::$conns[$id])) {
            return self::$conns[$id];
        }
        $w = Worker::$workers[$svc] ?? null;
        if ($w === null) {
            return null;
        }
        // A connection opened in another (replaced) worker process.
        $c = new Connection($id, $w, $remote);
        self::$conns[$id] = $c;
        $w->connections[$id] = $c;
        return $c;
    }

    public static function run(int $id): void
    {
        foreach (Worker::$workers as $w) {
            $w->id = $id;
        }
        foreach (Worker::$workers as $w) {
            if ($w->onWorkerStart) {
                self::call($w->onWorkerStart, [$w]);
            }
        }
        Internal\app_ready();
        for (;;) {
            $rd = $wr = [];
            foreach (self::$clients as $id => $k) {
                if ($k->stream) {
                    $rd[$id] = $k->stream;
                    if ($k->wantsWrite()) {
                        $wr[$id] = $k->stream;
                    }
                }
            }
            $events = Internal\app_wait(Timer::timeout(), $rd, $wr);
            if ($events === null) {
                break;
            }
            foreach ($events as [$type, $cid, $svc, $data, $flags]) {
                switch ($type) {
                    case self::EV_DGRAM:
                        $w = Worker::$workers[$svc] ?? null;
                        $al = unpack('n', $data)[1];
                        if ($w !== null && $w->onMessage) {
                            $u = new UdpConnection($w, substr($data, 2, $al));
                            $msg = (string)substr($data, 2 + $al);
                            self::call($w->onMessage, [$u, $w->protocol !== null ? ($w->protocol)::decode($msg, $u) : $msg]);
                        }
                        break;
                    case 30: // an async client's socket is readable
                        if (isset(self::$clients[$cid])) {
                            self::$clients[$cid]->readable();
                        }
                        break;
                    case 31: // ... writable
                        if (isset(self::$clients[$cid])) {
                            self::$clients[$cid]->writable();
                        }
                        break;
                    case self::EV_DATA:
                        $c = self::conn($cid, $svc, '');
                        if ($c === null) {
                            break;
                        }
                        $c->lastMessageBinary = ($flags & 1) === 1;
                        if ($c->worker->isHttp) {
                            self::http($c, $data);
                        } elseif ($c->worker->protocol !== null) {
                            self::input($c, $data);
                        } elseif ($c->worker->onMessage) {
                            self::call($c->worker->onMessage, [$c, $data]);
                        }
                        break;
                    case self::EV_OPEN:
                        // websocket: "address\nrequest head"
                        $head = '';
                        if (($nl = strpos($data, "\n")) !== false) {
                            $head = substr($data, $nl + 1);
                            $data = substr($data, 0, $nl);
                        }
                        $c = self::conn($cid, $svc, $data);
                        if ($c === null) {
                            break;
                        }
                        if ($head !== '') {
                            $c->httpHeader = $head;
                            if ($c->worker->onWebSocketConnect) {
                                self::call($c->worker->onWebSocketConnect, [$c, $head]);
                            }
                        }
                        if ($c->worker->onConnect) {
                            self::call($c->worker->onConnect, [$c]);
                        }
                        break;
                    case self::EV_CLOSE:
                        $c = self::$conns[$cid] ?? null;
                        if ($c === null) {
                            $c = self::conn($cid, $svc, '');
                        }
                        if ($c === null) {
                            break;
                        }
                        $c->markClosed();
                        unset(self::$conns[$cid], $c->worker->connections[$cid]);
                        if ($c->worker->onClose) {
                            self::call($c->worker->onClose, [$c]);
                        }
                        break;
                    case self::EV_FULL:
                    case self::EV_DRAIN:
                    case self::EV_ERROR:
                        $c = self::conn($cid, $svc, '');
                        $cb = $c === null ? null
                            : ($type === self::EV_FULL ? $c->worker->onBufferFull
                                : ($type === self::EV_DRAIN ? $c->worker->onBufferDrain : $c->worker->onError));
                        if ($cb) {
                            self::call($cb, $type === self::EV_ERROR ? [$c, 1, $data] : [$c]);
                        }
                        break;
                }
            }
            Timer::runDue();
        }
        foreach (Worker::$workers as $w) {
            if ($w->onWorkerStop) {
                self::call($w->onWorkerStop, [$w]);
            }
        }
        Internal\app_wait(0); // sends what the stop callbacks queued
    }

    /** http://: one request (see http_input() in src/proc/app_master.c for the layout). */
    private static function http(Connection $c, string $data): void
    {
        $headLen = unpack('V', $data, 1)[1];
        $request = new Http\Request(substr($data, 5, $headLen), (string)substr($data, 5 + $headLen));
        $request->connection = $c;
        $c->httpPending[] = [(ord($data[0]) & 1) === 1, $request->method() === 'HEAD'];
        $pending = count($c->httpPending);
        try {
            if ($c->worker->onMessage) {
                ($c->worker->onMessage)($c, $request);
            }
        } catch (\Throwable $e) {
            error_log(sprintf('Tusk: uncaught %s in a callback: %s in %s:%d', get_class($e), $e->getMessage(),
                $e->getFile(), $e->getLine()));
            if (count($c->httpPending) >= $pending) {
                $c->send(new Http\Response(500, [], "Internal Server Error\n"));
            }
        }
    }

    /** A protocol written in PHP: input() says how long the next message is (0: need more). */
    private static function input(Connection $c, string $data): void
    {
        $c->buffer .= $data;
        $p = $c->worker->protocol;
        while ($c->buffer !== '') {
            try {
                $n = $p::input($c->buffer, $c);
            } catch (\Throwable $e) {
                error_log('Tusk: ' . $p . '::input() threw ' . $e->getMessage());
                $n = -1;
            }
            if ($n === 0) {
                if (strlen($c->buffer) > $c->worker->maxPackageSize) {
                    $c->close();
                }
                return;
            }
            if ($n < 0 || $n > $c->worker->maxPackageSize) {
                $c->buffer = '';
                $c->close();
                return;
            }
            if (strlen($c->buffer) < $n) {
                return;
            }
            $msg = substr($c->buffer, 0, $n);
            $c->buffer = (string)substr($c->buffer, $n);
            if ($c->worker->onMessage) {
                self::call($c->worker->onMessage, [$c, $p::decode($msg, $c)]);
            }
        }
    }
}

namespace Tusk\Http;

/**
 * An HTTP request on an http:// service (Workerman's Request API). Tusk's C
 * side parsed and checked the head and read the body; the parts are parsed
 * here on first use.
 */
#[\AllowDynamicProperties]
class Request
{
    /** @var \Tusk\Connection|null the connection it came on */
    public $connection = null;
    private string $method;
    private string $uri;
    private string $version;
    private ?array $headers = null;
    private ?array $get = null;
    private ?array $post = null;
    private ?array $files = null;
    private ?array $cookies = null;
    /** @var string[] temporary files of uploads, removed with the request */
    private array $tmpFiles = [];

    public function __construct(private string $head, private string $body)
    {
        $eol = strpos($head, "\r\n");
        $line = $eol === false ? $head : substr($head, 0, $eol);
        $parts = explode(' ', $line, 3);
        $this->method = $parts[0];
        $this->uri = $parts[1] ?? '/';
        $this->version = isset($parts[2]) ? substr($parts[2], 5) : '1.1';
    }

    public function __destruct()
    {
        foreach ($this->tmpFiles as $f) {
            if (is_file($f)) {
                @unlink($f);
            }
        }
    }

    public function method(): string { return $this->method; }
    public function uri(): string { return $this->uri; }
    public function protocolVersion(): string { return $this->version; }
    public function rawHead(): string { return $this->head; }
    public function rawBody(): string { return $this->body; }

    public function path(): string
    {
        $q = strpos($this->uri, '?');
        return $q === false ? $this->uri : substr($this->uri, 0, $q);
    }

    public function queryString(): string
    {
        $q = strpos($this->uri, '?');
        return $q === false ? '' : substr($this->uri, $q + 1);
    }

    /** A header by lower-case name (several of a name joined with ", "), or all of them. */
    public function header(?string $name = null, mixed $default = null): mixed
    {
        if ($this->headers === null) {
            $this->headers = [];
            $eol = strpos($this->head, "\r\n");
            foreach (explode("\r\n", substr($this->head, $eol + 2)) as $line) {
                $colon = strpos($line, ':');
                if ($colon === false) {
                    continue;
                }
                $k = strtolower(substr($line, 0, $colon));
                $v = trim(substr($line, $colon + 1), " \t");
                $this->headers[$k] = isset($this->headers[$k])
                    ? $this->headers[$k] . ($k === 'cookie' ? '; ' : ', ') . $v : $v;
            }
        }
        return $name === null ? $this->headers : ($this->headers[strtolower($name)] ?? $default);
    }

    public function host(bool $withoutPort = false): ?string
    {
        $h = $this->header('host');
        if ($h === null || !$withoutPort) {
            return $h;
        }
        if ($h !== '' && $h[0] === '[') {
            $e = strpos($h, ']');
            return $e === false ? $h : substr($h, 0, $e + 1);
        }
        $p = strrpos($h, ':');
        return $p === false ? $h : substr($h, 0, $p);
    }

    /** Query string parameters: one, or all. */
    public function get(?string $name = null, mixed $default = null): mixed
    {
        if ($this->get === null) {
            $this->get = [];
            parse_str($this->queryString(), $this->get);
        }
        return $name === null ? $this->get : ($this->get[$name] ?? $default);
    }

    /** Body parameters (form, multipart or JSON): one, or all. */
    public function post(?string $name = null, mixed $default = null): mixed
    {
        if ($this->post === null) {
            $this->parseBody();
        }
        return $name === null ? $this->post : ($this->post[$name] ?? $default);
    }

    /** Uploaded files of a multipart body: one, or all (name, tmp_name, size, error, type). */
    public function file(?string $name = null): mixed
    {
        if ($this->post === null) {
            $this->parseBody();
        }
        return $name === null ? $this->files : ($this->files[$name] ?? null);
    }

    public function cookie(?string $name = null, mixed $default = null): mixed
    {
        if ($this->cookies === null) {
            $this->cookies = [];
            foreach (explode(';', (string)$this->header('cookie', '')) as $pair) {
                $eq = strpos($pair, '=');
                if ($eq === false) {
                    continue;
                }
                $k = trim(substr($pair, 0, $eq));
                if ($k !== '' && !isset($this->cookies[$k])) {
                    $this->cookies[$k] = urldecode(trim(substr($pair, $eq + 1), " \t\""));
                }
            }
        }
        return $name === null ? $this->cookies : ($this->cookies[$name] ?? $default);
    }

    private function parseBody(): void
    {
        $this->post = [];
        $this->files = [];
        if ($this->body === '') {
            return;
        }
        $type = strtolower((string)$this->header('content-type', ''));
        if (str_starts_with($type, 'application/x-www-form-urlencoded')) {
            parse_str($this->body, $this->post);
        } elseif (str_starts_with($type, 'application/json')) {
            $v = json_decode($this->body, true);
            $this->post = is_array($v) ? $v : [];
        } elseif (str_starts_with($type, 'multipart/form-data')
            && preg_match('/boundary="?([^";]+)"?/i', (string)$this->header('content-type'), $m)) {
            $this->parseMultipart($m[1]);
        }
    }

    private function parseMultipart(string $boundary): void
    {
        $delim = "--$boundary";
        $pos = strpos($this->body, $delim);
        if ($pos === false) {
            return;
        }
        $pos += strlen($delim);
        $fields = '';
        while (substr($this->body, $pos, 2) === "\r\n") {
            $headEnd = strpos($this->body, "\r\n\r\n", $pos + 2);
            $next = $headEnd === false ? false : strpos($this->body, "\r\n$delim", $headEnd + 4);
            if ($next === false) {
                return; // truncated: keep what was complete
            }
            $partHead = substr($this->body, $pos + 2, $headEnd - $pos - 2);
            $content = substr($this->body, $headEnd + 4, $next - $headEnd - 4);
            $pos = $next + 2 + strlen($delim);
            $name = $filename = null;
            $ctype = '';
            foreach (explode("\r\n", $partHead) as $h) {
                if (stripos($h, 'content-disposition:') === 0) {
                    if (preg_match('/\bname="([^"]*)"/i', $h, $m)) {
                        $name = $m[1];
                    }
                    if (preg_match('/\bfilename="([^"]*)"/i', $h, $m)) {
                        $filename = $m[1];
                    }
                } elseif (stripos($h, 'content-type:') === 0) {
                    $ctype = trim(substr($h, 13));
                }
            }
            if ($name === null) {
                continue;
            }
            if ($filename === null) {
                // Through parse_str, so that a[]= and a[k]= nest as in $_POST.
                $fields .= ($fields === '' ? '' : '&') . urlencode($name) . '=' . urlencode($content);
                continue;
            }
            $tmp = tempnam(sys_get_temp_dir(), 'tusk-upload-');
            $ok = $tmp !== false && file_put_contents($tmp, $content) === strlen($content);
            if ($tmp !== false) {
                $this->tmpFiles[] = $tmp;
            }
            $this->files[$name] = [
                'name' => basename($filename),
                'tmp_name' => $ok ? $tmp : '',
                'size' => strlen($content),
                'error' => $ok ? UPLOAD_ERR_OK : UPLOAD_ERR_CANT_WRITE,
                'type' => $ctype,
            ];
        }
        if ($fields !== '') {
            parse_str($fields, $this->post);
        }
    }
}

/** An HTTP response for Connection::send() on an http:// service (Workerman's Response API). */
class Response
{
    private const REASONS = [
        100 => 'Continue', 101 => 'Switching Protocols', 200 => 'OK', 201 => 'Created', 202 => 'Accepted',
        204 => 'No Content', 206 => 'Partial Content', 301 => 'Moved Permanently', 302 => 'Found',
        303 => 'See Other', 304 => 'Not Modified', 307 => 'Temporary Redirect', 308 => 'Permanent Redirect',
        400 => 'Bad Request', 401 => 'Unauthorized', 403 => 'Forbidden', 404 => 'Not Found',
        405 => 'Method Not Allowed', 406 => 'Not Acceptable', 408 => 'Request Timeout', 409 => 'Conflict',
        410 => 'Gone', 411 => 'Length Required', 413 => 'Content Too Large', 415 => 'Unsupported Media Type',
        422 => 'Unprocessable Content', 429 => 'Too Many Requests', 500 => 'Internal Server Error',
        501 => 'Not Implemented', 502 => 'Bad Gateway', 503 => 'Service Unavailable', 504 => 'Gateway Timeout',
    ];

    /** @var array<string, string|string[]> by name as given */
    private array $headers = [];
    private ?string $reason = null;

    public function __construct(private int $status = 200, array $headers = [], private string $body = '')
    {
        $this->withHeaders($headers);
    }

    public function withStatus(int $code, ?string $reason = null): static
    {
        $this->status = $code;
        $this->reason = $reason;
        return $this;
    }

    public function withHeader(string $name, mixed $value): static
    {
        foreach (array_keys($this->headers) as $k) {
            if (strcasecmp($k, $name) === 0) {
                unset($this->headers[$k]);
            }
        }
        $this->headers[$name] = is_array($value) ? array_map('strval', $value) : (string)$value;
        return $this;
    }

    public function header(string $name, mixed $value): static { return $this->withHeader($name, $value); }

    public function withHeaders(array $headers): static
    {
        foreach ($headers as $k => $v) {
            $this->withHeader($k, $v);
        }
        return $this;
    }

    public function withoutHeader(string $name): static
    {
        foreach (array_keys($this->headers) as $k) {
            if (strcasecmp($k, $name) === 0) {
                unset($this->headers[$k]);
            }
        }
        return $this;
    }

    public function withBody(string $body): static
    {
        $this->body = $body;
        return $this;
    }

    /** Adds a Set-Cookie header. */
    public function cookie(string $name, string $value = '', ?int $maxAge = null, string $path = '',
                           string $domain = '', bool $secure = false, bool $httpOnly = false,
                           string $sameSite = ''): static
    {
        $c = $name . '=' . rawurlencode($value)
            . ($maxAge !== null ? '; Max-Age=' . $maxAge : '') . ($path !== '' ? '; Path=' . $path : '')
            . ($domain !== '' ? '; Domain=' . $domain : '') . ($secure ? '; Secure' : '')
            . ($httpOnly ? '; HttpOnly' : '') . ($sameSite !== '' ? '; SameSite=' . $sameSite : '');
        $old = $this->getHeader('Set-Cookie');
        $this->withHeader('Set-Cookie', array_merge($old === null ? [] : (array)$old, [$c]));
        return $this;
    }

    public function getStatusCode(): int { return $this->status; }
    public function getReasonPhrase(): string { return $this->reason ?? (self::REASONS[$this->status] ?? 'Unknown'); }
    public function getHeaders(): array { return $this->headers; }
    public function rawBody(): string { return $this->body; }

    public function getHeader(string $name): mixed
    {
        foreach ($this->headers as $k => $v) {
            if (strcasecmp($k, $name) === 0) {
                return $v;
            }
        }
        return null;
    }

    /** The response on the wire (HTTP/1.1), for a keep-alive request (or not), to a HEAD request (no body). */
    public function encode(bool $keepAlive = true, bool $head = false): string
    {
        $out = 'HTTP/1.1 ' . $this->status . ' ' . $this->getReasonPhrase() . "\r\nServer: tusk\r\n";
        $type = false;
        foreach ($this->headers as $k => $v) {
            $lk = strtolower($k);
            if ($lk === 'content-length' || $lk === 'connection' || $lk === 'transfer-encoding') {
                continue; // ours
            }
            $type = $type || $lk === 'content-type';
            foreach ((array)$v as $one) {
                $out .= $k . ': ' . str_replace(["\r", "\n"], '', $one) . "\r\n";
            }
        }
        $noBody = $this->status < 200 || $this->status === 204 || $this->status === 304;
        if (!$type && !$noBody) {
            $out .= "Content-Type: text/html; charset=utf-8\r\n";
        }
        if (!$noBody) {
            $out .= 'Content-Length: ' . strlen($this->body) . "\r\n";
        }
        $out .= $keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
        return $head || $noBody ? $out : $out . $this->body;
    }

    public function __toString(): string { return $this->encode(); }
}

namespace Tusk;

if (!empty($_SERVER['TUSK_APP_SCRIPT'])) {
    require $_SERVER['TUSK_APP_SCRIPT'];
    Worker::runAll(); // a script that forgot to call it still runs
}
