<?php
header('Content-Type: application/json');
echo json_encode(['script' => 'app.php', 'uri' => $_SERVER['REQUEST_URI'],
                  'script_name' => $_SERVER['SCRIPT_NAME'], 'get' => $_GET]);
