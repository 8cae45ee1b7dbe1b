<?php
// Does not move the upload: PHP must delete the temp file after the request.
header('Content-Type: application/json');
$f = $_FILES['f'];
echo json_encode(['tmp_name' => $f['tmp_name'], 'existed' => file_exists($f['tmp_name']), 'error' => $f['error']]);
