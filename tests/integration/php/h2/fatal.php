<?php
echo "before";
this_function_does_not_exist_h2();
