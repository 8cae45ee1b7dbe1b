<?php
// Throws while booting, before the request loop.
throw new RuntimeException('database unreachable during worker boot');
while (frankenphp_handle_request(function () { echo "unreachable"; })) {}
