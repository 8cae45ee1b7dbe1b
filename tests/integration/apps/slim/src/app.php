<?php
// A Slim 3 application (Debian's php-slim 3.12, its own PSR-7 classes in
// Slim\Http). slim_app() builds it once; in worker mode
// slim_handle_request() serves each request with a request, response and
// environment built from that request's $_SERVER, as App::run() would in
// a fresh process.

require_once '/usr/share/php/Slim/autoload.php';

use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\ServerRequestInterface;
use Slim\App;
use Slim\Http\Environment;
use Slim\Http\Headers;
use Slim\Http\Request;
use Slim\Http\Response;

function slim_app(): App
{
    $bootPid = getmypid();
    // An object, not a variable captured by reference: Slim re-binds the
    // middleware closure for every call, which copies such variables.
    $stats = new stdClass();
    $stats->served = 0;
    $app = new App(['settings' => ['displayErrorDetails' => true]]);

    $app->add(function (ServerRequestInterface $req, ResponseInterface $res, callable $next) use ($bootPid, $stats) {
        $stats->served++;
        $res = $next($req, $res);
        return $res->withHeader('X-Worker-Pid', (string)getmypid())
                   ->withHeader('X-Boot-Pid', (string)$bootPid)
                   ->withHeader('X-Served', (string)$stats->served);
    });

    $app->get('/', function (Request $req, Response $res) {
        return $res->withHeader('Content-Type', 'text/plain')->write("Hello from Slim\n");
    });
    $app->get('/hello/{name}', function (Request $req, Response $res, array $args) {
        return $res->withHeader('Content-Type', 'text/plain')->write('Hello ' . $args['name']);
    });
    $app->post('/form', function (Request $req, Response $res) {
        $body = $req->getParsedBody();
        return $res->withJson(['field' => $body['field'] ?? null, 'all' => $body, 'query' => $req->getQueryParams()]);
    });
    $app->get('/session', function (Request $req, Response $res) {
        session_start();
        $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
        $tag = $req->getQueryParam('tag');
        if ($tag !== null) {
            $_SESSION['tag'] = $tag;
        }
        // No session_write_close(): PHP writes the session when the request ends.
        return $res->withJson(['n' => $_SESSION['n'], 'id' => session_id(), 'tag' => $_SESSION['tag'] ?? null]);
    });
    $app->post('/upload', function (Request $req, Response $res) {
        $files = $req->getUploadedFiles();
        $file = $files['file'] ?? null;
        if ($file === null || $file->getError() !== UPLOAD_ERR_OK) {
            return $res->withJson(['error' => 'no file', 'files' => array_keys($files)], 400);
        }
        return $res->withJson([
            'name' => $file->getClientFilename(),
            'size' => $file->getSize(),
            'md5' => md5((string)$file->getStream()),
            'note' => $req->getParsedBody()['note'] ?? null,
        ]);
    });
    return $app;
}

/** Serves the current request ($_SERVER, $_POST, $_FILES) with a long-lived app. */
function slim_handle_request(App $app): void
{
    $c = $app->getContainer();
    // 'environment', 'request' and 'response' are shared services: once
    // read they are frozen with the first request's values. Replace them.
    unset($c['environment'], $c['request'], $c['response']);
    $c['environment'] = function () {
        return new Environment($_SERVER);
    };
    $c['request'] = function ($c) {
        return Request::createFromEnvironment($c->get('environment'));
    };
    $c['response'] = function ($c) {
        $response = new Response(200, new Headers(['Content-Type' => 'text/html; charset=UTF-8']));
        return $response->withProtocolVersion($c->get('settings')['httpVersion']);
    };
    $app->run();
}
