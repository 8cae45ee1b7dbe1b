<?php
// A small Symfony 5.4 application built from Debian's php-symfony-*
// packages: HttpKernel + EventDispatcher + Routing, closures as controllers,
// sessions through HttpFoundation's Session on NativeSessionStorage.
// app_kernel() builds it once; the worker (public/worker.php) keeps the
// kernel between requests, the classic front controller (public/index.php)
// builds it per request.

require_once '/usr/share/php/Symfony/Component/HttpKernel/autoload.php';
require_once '/usr/share/php/Symfony/Component/Routing/autoload.php';

use Symfony\Component\EventDispatcher\EventDispatcher;
use Symfony\Component\HttpFoundation\File\UploadedFile;
use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\RequestStack;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpFoundation\Session\Session;
use Symfony\Component\HttpFoundation\Session\Storage\NativeSessionStorage;
use Symfony\Component\HttpKernel\Controller\ArgumentResolver;
use Symfony\Component\HttpKernel\Controller\ControllerResolver;
use Symfony\Component\HttpKernel\Event\ExceptionEvent;
use Symfony\Component\HttpKernel\Event\RequestEvent;
use Symfony\Component\HttpKernel\Event\ResponseEvent;
use Symfony\Component\HttpKernel\EventListener\RouterListener;
use Symfony\Component\HttpKernel\Exception\HttpExceptionInterface;
use Symfony\Component\HttpKernel\HttpKernel;
use Symfony\Component\HttpKernel\HttpKernelInterface;
use Symfony\Component\HttpKernel\KernelEvents;
use Symfony\Component\Routing\Matcher\UrlMatcher;
use Symfony\Component\Routing\RequestContext;
use Symfony\Component\Routing\Route;
use Symfony\Component\Routing\RouteCollection;

function app_kernel(): HttpKernel
{
    $bootPid = getmypid();
    $served = 0;

    $routes = new RouteCollection();
    $routes->add('home', new Route('/', ['_controller' => function () {
        return new Response("Hello from Symfony\n", 200, ['Content-Type' => 'text/plain']);
    }], [], [], '', [], ['GET']));
    $routes->add('hello', new Route('/hello/{name}', ['_controller' => function (string $name) {
        return new Response('Hello ' . $name, 200, ['Content-Type' => 'text/plain']);
    }], [], [], '', [], ['GET']));
    $routes->add('form', new Route('/form', ['_controller' => function (Request $request) {
        return new JsonResponse([
            'field' => $request->request->get('field'),
            'all' => $request->request->all(),
            'query' => $request->query->all(),
        ]);
    }], [], [], '', [], ['POST']));
    $routes->add('session', new Route('/session', ['_controller' => function (Request $request) {
        $session = $request->getSession();
        $n = $session->get('n', 0) + 1;
        $session->set('n', $n);
        if ($request->query->has('tag')) {
            $session->set('tag', $request->query->get('tag'));
        }
        return new JsonResponse(['n' => $n, 'id' => $session->getId(), 'tag' => $session->get('tag')]);
    }], [], [], '', [], ['GET']));
    $routes->add('upload', new Route('/upload', ['_controller' => function (Request $request) {
        $file = $request->files->get('file');
        if (!$file instanceof UploadedFile || !$file->isValid()) {
            return new JsonResponse(['error' => 'no file', 'files' => array_keys($request->files->all())], 400);
        }
        return new JsonResponse([
            'name' => $file->getClientOriginalName(),
            'size' => $file->getSize(),
            'md5' => md5_file($file->getPathname()),
            'note' => $request->request->get('note'),
        ]);
    }], [], [], '', [], ['POST']));

    $requestStack = new RequestStack();
    $dispatcher = new EventDispatcher();
    $dispatcher->addSubscriber(new RouterListener(new UrlMatcher($routes, new RequestContext()), $requestStack));
    // A fresh session per request, as FrameworkBundle's session factory does.
    $dispatcher->addListener(KernelEvents::REQUEST, function (RequestEvent $event) {
        if ($event->isMainRequest() && !$event->getRequest()->hasSession()) {
            $event->getRequest()->setSession(new Session(new NativeSessionStorage()));
        }
    }, 128);
    // Saves the session (as AbstractSessionListener does) and tags every
    // response with the process that made it.
    $dispatcher->addListener(KernelEvents::RESPONSE, function (ResponseEvent $event) use ($bootPid, &$served) {
        $served++;
        $request = $event->getRequest();
        if ($request->hasSession() && $request->getSession()->isStarted()) {
            $request->getSession()->save();
        }
        $event->getResponse()->headers->set('X-Worker-Pid', (string)getmypid());
        $event->getResponse()->headers->set('X-Boot-Pid', (string)$bootPid);
        $event->getResponse()->headers->set('X-Served', (string)$served);
    }, -1000);
    $dispatcher->addListener(KernelEvents::EXCEPTION, function (ExceptionEvent $event) {
        $e = $event->getThrowable();
        $status = $e instanceof HttpExceptionInterface ? $e->getStatusCode() : 500;
        $event->setResponse(new Response(get_class($e) . ': ' . $e->getMessage(), $status, ['Content-Type' => 'text/plain']));
    });

    return new HttpKernel($dispatcher, new ControllerResolver(), $requestStack, new ArgumentResolver());
}
