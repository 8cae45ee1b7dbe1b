<?php
echo "fast done";
