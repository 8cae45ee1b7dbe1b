<?php
header('Content-Type: application/json');
echo json_encode(['script' => 'index.php', 'uri' => $_SERVER['REQUEST_URI'],
                  'script_name' => $_SERVER['SCRIPT_NAME'], 'script_filename' => $_SERVER['SCRIPT_FILENAME'],
                  'php_self' => $_SERVER['PHP_SELF'], 'get' => $_GET]);
