<?php
// Sends "first" at once, then "second" after a pause: a streamed response.
echo "first\n";
if (ob_get_level()) {
    ob_flush();
}
flush();
usleep(400000);
echo "second\n";
