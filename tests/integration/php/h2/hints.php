<?php
// 103 Early Hints, then the final response 300 ms later.
header('Link: </style.css>; rel=preload; as=style');
$r = headers_send(103);
usleep(300000);
header('Link: </app.js>; rel=preload; as=script', false);
header('Content-Type: text/plain');
echo "final after hints ($r)";
