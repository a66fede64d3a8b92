"""The hottest API endpoints, called straight from ``Front``: past Starlette's middleware and
router, with the same ``Request``, the same endpoint and the same exception handlers.

Starlette's ServerErrorMiddleware, ExceptionMiddleware, router, route and ``request_response``
each wrap the request (a ``send`` wrapper, a scope lookup, a handler context) before the
endpoint runs: about 30 µs of CPU a refresh, a tenth of what it does besides signing (measured
in process: 285 against 255 µs). Under ``scripts/bench`` refresh went from 0.80 to 0.84 of its
ceiling (three runs each way, alternated). The endpoints listed in ``idp.app.DIRECT`` are
static, take no path parameters and answer JSON, so nothing of that is needed for them.

Exceptions keep Starlette's meaning: the handler of the exception's nearest class answers; the
one for ``Exception`` (or 500) answers and the exception is raised again for the server to log,
as ServerErrorMiddleware does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request[Any]], Awaitable[Response]]
ExceptionHandler = Callable[[Request[Any], Exception], Awaitable[Response]]


def direct_app(endpoint: Endpoint, handlers: Mapping[Any, ExceptionHandler]) -> ASGIApp:
    """``endpoint`` as an ASGI app, its exceptions answered by ``handlers`` (the app's
    ``exception_handlers``: exception classes, or 500)."""
    by_class = {key: handler for key, handler in handlers.items() if isinstance(key, type)}
    server_error = by_class.pop(Exception, None) or handlers.get(500)

    def handler_for(exc: Exception) -> ExceptionHandler | None:
        for cls in type(exc).__mro__:
            if cls in by_class:
                return by_class[cls]
        return None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request: Request[Any] = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = handler_for(exc)
            if handler is not None:
                response = await handler(request, exc)
            elif server_error is not None:
                await (await server_error(request, exc))(scope, receive, send)
                raise
            else:
                raise
        await response(scope, receive, send)

    return app
