<?php
// A fixed-size response, for HEAD.
header("X-Fixed: yes");
echo str_repeat("x", 1234);
