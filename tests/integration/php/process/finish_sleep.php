<?php
// Answers at once, then keeps the worker busy for ?ms= milliseconds.
header('Content-Type: text/plain');
echo "done ", getmypid();
fastcgi_finish_request();
usleep((int)($_GET['ms'] ?? 5000) * 1000);
