<?php
// Answers with the length and md5 of the request body.
$b = file_get_contents('php://input');
header('Content-Type: text/plain');
echo strlen($b), ' ', md5($b);
