<?php
// 100 records, encoded on every request. bench/workerman/start.php mirrors
// this exactly; bench/run.sh checks that every server returns identical bytes.
header('Content-Type: application/json');

$items = [];
for ($i = 1; $i <= 100; $i++) {
    $items[] = [
        'id' => $i,
        'name' => "User $i",
        'email' => "user$i@example.com",
        'active' => $i % 3 !== 0,
    ];
}

echo json_encode($items);
