<?php
// A second PHP file in the document root of the worker-mode app.
echo "classic other.php ran";
