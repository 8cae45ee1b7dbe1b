<?php echo "hello tls";
