<?php
// Reports $_SERVER as JSON.
header('Content-Type: application/json');
echo json_encode($_SERVER);
