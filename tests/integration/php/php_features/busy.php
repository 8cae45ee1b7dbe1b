<?php
// Burns CPU (not sleep) past set_time_limit(1).
set_time_limit(1);
$x = 0;
while (true) { $x++; }
