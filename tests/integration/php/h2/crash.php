<?php
// The worker kills itself mid-request.
posix_kill(getmypid(), 9);
echo "still alive";
