<?php
// SOURCE-MARKER-php: this comment must never reach a client.
echo "executed:", 6 * 7;
