<?php
// Slow endpoint for the slow-mix measurement of bench/run.sh: 50 ms of waiting
// (like a call to an external API), then a short body.
usleep(50000);
echo "slow";
