<?php
// output_buffering (4096 in the system php.ini) holds output until the
// buffer is flushed: end it, as streaming scripts do.
while (ob_get_level()) ob_end_flush();
echo "first";
flush();
usleep(500000);
echo "second";
