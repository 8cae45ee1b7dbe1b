<?php
header('Content-Type: image/png');
echo str_repeat("PNGDATA ", 2000);
