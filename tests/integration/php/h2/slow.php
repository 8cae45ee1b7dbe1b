<?php
// Takes a second: used to show that streams of one connection run in parallel.
sleep(1);
echo "slow done";
