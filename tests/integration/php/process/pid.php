<?php
// Answers with the pid of the PHP worker that ran it.
header('Content-Type: text/plain');
echo getmypid();
