<?php
// ?op=store&key=K&value=V[&ms=N] stores (then sleeps N ms); ?op=fetch&key=K fetches.
header('Content-Type: application/json');
$key = $_GET['key'] ?? 'k';
$out = ['pid' => getmypid(), 'enabled' => function_exists('apcu_enabled') && apcu_enabled()];
if (($_GET['op'] ?? '') === 'store') {
    $out['stored'] = apcu_store($key, $_GET['value'] ?? '');
} else {
    $ok = false;
    $out['value'] = apcu_fetch($key, $ok);
    $out['found'] = $ok;
}
if (isset($_GET['ms'])) usleep((int)$_GET['ms'] * 1000);
echo json_encode($out);
