<?php
// Worker-mode example: boots once per worker, then serves requests.
//   build/tusk serve examples/worker/public --worker worker.php
// Works unchanged under FrankenPHP (same API).

$bootedAt = microtime(true);
$routes = [
    '/' => static function (): void {
        header('Content-Type: text/html; charset=utf-8');
        echo '<h1>Hello from a worker</h1><p>This PHP process booted once and serves many requests.</p>';
    },
    '/api/stats' => static function () use ($bootedAt): void {
        static $served = 0; // kept between requests on purpose: this is worker state
        $served++;
        header('Content-Type: application/json');
        echo json_encode([
            'pid' => getmypid(),
            'served_by_this_worker' => $served,
            'uptime_s' => round(microtime(true) - $bootedAt, 3),
        ]);
    },
];

$handler = static function () use ($routes): void {
    $path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
    if (isset($routes[$path])) {
        $routes[$path]();
        return;
    }
    http_response_code(404);
    echo "Not found: ", htmlspecialchars($path);
};

while (frankenphp_handle_request($handler)) {
    gc_collect_cycles();
}
