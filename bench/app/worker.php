<?php
// Worker-mode app for bench/run.sh (servers tusk-worker-pooled and
// tusk-worker-direct: `tusk serve bench/app --worker bench/app/worker.php`).
// Boots once per PHP worker, then serves every non-static request in a loop;
// it routes on the request path and does the same work per request as the
// classic scripts, so run.sh's byte-for-byte endpoint check applies:
//   /hello.php   as app/hello.php
//   /json.php    as app/json.php (the 100 records are built and encoded on
//                every request, as there and in bench/workerman/start.php)
//   /slow.php    as app/slow.php (slow mix)
//   /opcache.php, /extensions.php   the run.sh probes (not benchmarked)

if (!function_exists('frankenphp_handle_request')) {
    // Requested from a classic server (nginx+php-fpm, tusk without --worker).
    http_response_code(404);
    echo "worker.php only runs under tusk --worker\n";
    return;
}

$handler = static function (): void {
    switch (parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH)) {
        case '/hello.php':
            echo "Hello, World!";
            return;

        case '/json.php':
            header('Content-Type: application/json');
            $items = [];
            for ($i = 1; $i <= 100; $i++) {
                $items[] = [
                    'id' => $i,
                    'name' => "User $i",
                    'email' => "user$i@example.com",
                    'active' => $i % 3 !== 0,
                ];
            }
            echo json_encode($items);
            return;

        case '/slow.php':
            usleep(50000);
            echo "slow";
            return;

        case '/opcache.php':
            require __DIR__ . '/opcache.php';
            return;

        case '/extensions.php':
            require __DIR__ . '/extensions.php';
            return;
    }
    http_response_code(404);
    echo "Not Found\n";
};

while (frankenphp_handle_request($handler)) {
    // nothing kept between requests
}
