<?php
// Worker-mode entry point: the kernel is built once per process, then the
// loop is the one Symfony's runtime (runtime/frankenphp-symfony) runs.

use Symfony\Component\HttpFoundation\Request;

require dirname(__DIR__) . '/src/app.php';

$kernel = app_kernel();

while (frankenphp_handle_request(function () use ($kernel) {
    $request = Request::createFromGlobals();
    $response = $kernel->handle($request);
    $response->send();
    $kernel->terminate($request, $response);
})) {
    gc_collect_cycles();
}
