<?php
// "first" at once, "second" 600 ms later.
echo "first\n";
if (ob_get_level()) {
    ob_flush();
}
flush();
usleep(600000);
echo "second\n";
