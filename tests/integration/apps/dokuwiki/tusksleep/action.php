<?php
/**
 * A slow background task for lib/exe/taskrunner.php: the task runner sends
 * its 1x1 GIF (with Content-Length and "Connection: Close") and flushes it,
 * then runs the INDEXER_TASKS_RUN tasks while the client is already done.
 */
class action_plugin_tusksleep extends DokuWiki_Action_Plugin
{
    public function register(Doku_Event_Handler $controller)
    {
        $controller->register_hook('INDEXER_TASKS_RUN', 'BEFORE', $this, 'slowTask');
    }

    public function slowTask(Doku_Event $event, $param)
    {
        global $conf;
        usleep(1500000);
        file_put_contents($conf['tmpdir'] . '/tusksleep.done', (string) microtime(true));
    }
}
