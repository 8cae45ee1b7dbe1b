<?php
const APP_VERSION = 'v1';
