<?php
// A line-based chat room: `tusk run examples/events/chat.php`, then
// `nc 127.0.0.1 2345` in two terminals. Commands: /nick NAME, /join ROOM;
// anything else goes to everyone in your room.
use Tusk\Connection;
use Tusk\Server;
use Tusk\Timer;
use Tusk\Worker;

$chat = new Worker('text://127.0.0.1:2345');
$chat->name = 'chat';

$chat->onWorkerStart = function (Worker $w) {
    // Timers run in each worker process; this one says the time to the lobby.
    Timer::add(60, fn() => Server::sendToGroup('lobby', '* it is ' . date('H:i')));
};

$chat->onConnect = function (Connection $c) {
    $c->nick = 'guest' . $c->id;
    $c->room = 'lobby';
    $c->joinGroup('lobby');
    $c->send("* welcome {$c->nick}; /nick NAME, /join ROOM");
};

$chat->onMessage = function (Connection $c, string $line) {
    // A worker may be replaced (reload, crash) while the connection stays
    // open: properties set on $c live in this worker, so restore defaults.
    $c->nick ??= 'guest' . $c->id;
    $c->room ??= 'lobby';
    if (preg_match('~^/nick (\w{1,20})$~', $line, $m)) {
        $c->nick = $m[1];
        $c->send("* you are {$c->nick}");
    } elseif (preg_match('~^/join (\w{1,20})$~', $line, $m)) {
        $c->leaveGroup($c->room);
        $c->room = $m[1];
        $c->joinGroup($c->room);
        $c->send("* you are in {$c->room}");
    } elseif ($line !== '') {
        Server::sendToGroup($c->room, "<{$c->nick}> $line");
    }
};

Worker::runAll();
