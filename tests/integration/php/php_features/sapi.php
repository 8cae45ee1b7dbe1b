<?php
echo php_sapi_name(), "|", PHP_SAPI, "|", PHP_VERSION;
