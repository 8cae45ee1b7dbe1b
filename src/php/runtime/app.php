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
    public int $index;

    public function __construct(public string $listen = '', public array $context = [])
    {
        $this->index = count(self::$workers);
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
            $decl[] = [$w->listen, $w->name, $w->protocol !== null ? 1 : 0, $w->maxPackageSize];
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
    private bool $closed = false;

    public function __construct(public int $id, public Worker $worker, private string $remote)
    {
    }

    /** Queues data for the client (framed by the service's protocol). */
    public function send(string $data, bool $raw = false): bool
    {
        if ($this->closed) {
            return false;
        }
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
        CMD_BIND = 47, CMD_SEND_GROUP = 48, CMD_SEND_UID = 49, CMD_BCAST = 50, CMD_SEND_RAW = 51, CMD_SEND_BIN = 52;

    /** @var Connection[] by id */
    private static array $conns = [];

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
            $events = Internal\app_wait(Timer::timeout());
            if ($events === null) {
                break;
            }
            foreach ($events as [$type, $cid, $svc, $data, $flags]) {
                switch ($type) {
                    case self::EV_DATA:
                        $c = self::conn($cid, $svc, '');
                        if ($c === null) {
                            break;
                        }
                        $c->lastMessageBinary = ($flags & 1) === 1;
                        if ($c->worker->protocol !== null) {
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

if (!empty($_SERVER['TUSK_APP_SCRIPT'])) {
    require $_SERVER['TUSK_APP_SCRIPT'];
    Worker::runAll(); // a script that forgot to call it still runs
}
