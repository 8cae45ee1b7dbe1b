<?php
// Worker-mode entry point: the Slim app is built once per process.

require dirname(__DIR__) . '/src/app.php';

$app = slim_app();

while (frankenphp_handle_request(function () use ($app) {
    slim_handle_request($app);
})) {
    gc_collect_cycles();
}
