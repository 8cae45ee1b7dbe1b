<?php
// Ends the response, then keeps running and writes ?marker=FILE.
echo "done";
fastcgi_finish_request();
usleep(300000);
echo "never sent";
file_put_contents($_GET['marker'], 'written at ' . microtime(true));
