<?php
// Sleeping is not CPU time: max_execution_time does not count it on Linux.
set_time_limit(1);
usleep((int)$_GET['us']);
echo "slept";
