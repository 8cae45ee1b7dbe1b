<?php
// Moves each uploaded file into ?dest=DIR and reports what PHP saw.
header('Content-Type: application/json');
$dest = $_GET['dest'] ?? '';
$out = ['files' => $_FILES, 'report' => []];
foreach ($_FILES as $field => $f) {
    $r = [
        'tmp_name' => $f['tmp_name'],
        'existed' => $f['tmp_name'] !== '' && file_exists($f['tmp_name']),
        'is_uploaded' => $f['tmp_name'] !== '' && is_uploaded_file($f['tmp_name']),
        'moved' => false,
    ];
    if ($dest !== '' && $f['error'] === UPLOAD_ERR_OK) {
        $r['moved'] = move_uploaded_file($f['tmp_name'], $dest . '/' . basename($f['name']));
        $r['exists_after_move'] = file_exists($f['tmp_name']);
    }
    $out['report'][$field] = $r;
}
$out['passwd_is_uploaded'] = is_uploaded_file('/etc/passwd');
$out['passwd_moved'] = $dest !== '' ? @move_uploaded_file('/etc/passwd', $dest . '/passwd') : null;
echo json_encode($out);
