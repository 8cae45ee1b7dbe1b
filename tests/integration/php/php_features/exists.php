<?php
clearstatcache();
echo file_exists($_GET['f']) ? 'yes' : 'no';
