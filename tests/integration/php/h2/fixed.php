<?php
// Declares its own Content-Length.
header("Content-Length: 11");
echo "fixed body\n";
