<?php
// Appends a line to ?f=FILE, then takes ?ms= milliseconds: shows whether the request ran.
file_put_contents($_GET['f'], getmypid() . "\n", FILE_APPEND);
usleep((int)($_GET['ms'] ?? 0) * 1000);
echo "marked";
