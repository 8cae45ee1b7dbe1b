<?php
// The worker kills itself with SIGKILL mid-request: the master must answer 502.
posix_kill(getmypid(), 9);
echo "still alive";
