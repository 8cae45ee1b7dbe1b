<?php
echo "before";
throw new RuntimeException('tusk test exception');
