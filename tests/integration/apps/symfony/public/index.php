<?php
// Classic (one request per script run) front controller of the same app.

use Symfony\Component\HttpFoundation\Request;

require dirname(__DIR__) . '/src/app.php';

$kernel = app_kernel();
$request = Request::createFromGlobals();
$response = $kernel->handle($request);
$response->send();
$kernel->terminate($request, $response);
