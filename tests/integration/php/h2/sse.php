<?php
// Server-Sent Events: ?n events, ?gap seconds apart; writes ?mark when it
// sees the client leave (connection_aborted() after a flush).
header('Content-Type: text/event-stream');
header('Cache-Control: no-cache');
ignore_user_abort(true);
while (ob_get_level() > 0) ob_end_flush(); // as SSE scripts do under output_buffering
$n = (int)($_GET['n'] ?? 3);
$gap = (float)($_GET['gap'] ?? 0.1);
for ($i = 1; $i <= $n; $i++) {
    echo "id: $i\ndata: tick $i\n\n";
    flush();
    if (connection_aborted()) {
        if (!empty($_GET['mark'])) file_put_contents($_GET['mark'], "aborted after $i\n");
        exit;
    }
    usleep((int)($gap * 1e6));
}
