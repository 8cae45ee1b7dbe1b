<?php
// Fails to compile: the worker can never boot.
$app = function () {
    echo "unreachable"
}
while (frankenphp_handle_request($app)) {}
