<?php
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
header('Content-Type: application/json');
echo json_encode(['n' => $_SESSION['n'], 'id' => session_id(), 'name' => session_name(),
                  'save_path' => session_save_path()]);
