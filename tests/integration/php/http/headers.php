<?php
// Counts the X-H* request headers PHP saw, in $_SERVER and in getallheaders().
$server = count(array_filter(array_keys($_SERVER), fn ($k) => str_starts_with($k, 'HTTP_X_H')));
$all = count(array_filter(array_keys(getallheaders()), fn ($k) => str_starts_with($k, 'X-H')));
echo "$server $all ", $_SERVER['HTTP_X_H399'] ?? '-';
