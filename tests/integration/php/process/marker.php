<?php
// Compiled by one worker only; another worker must see it in OPcache.
echo "marker ", getmypid();
