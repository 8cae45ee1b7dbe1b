<?php
header('Content-Type: text/plain');
echo str_repeat("s", 100);
