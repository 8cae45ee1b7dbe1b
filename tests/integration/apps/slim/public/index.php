<?php
// Classic (one request per script run) front controller of the same app.

require dirname(__DIR__) . '/src/app.php';

slim_app()->run();
