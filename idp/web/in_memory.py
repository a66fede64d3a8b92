"""Endpoints answered from bytes held in memory (JWKS, discovery), written as plain ASGI apps.

They are what every relying service fetches. Starlette's ``Route`` calls an endpoint that is
not a function as an ASGI app, so they are routes of the URL map like any other, answered
without a ``Request`` or a ``Response`` being built for them. ``InMemoryRoutes``, the innermost
middleware the app declares, answers their GETs after every declared middleware has seen the
request, without Starlette's exception middleware and router, which would cost a sixth of what
serving them costs; ``create_app(..., in_memory_first=False)`` leaves them to the router.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

RawHeaders = list[tuple[bytes, bytes]]
# (lifespan state, request headers) -> (status, response headers, body)
Answer = Callable[[Mapping[str, Any], RawHeaders], tuple[int, RawHeaders, bytes]]


class InMemoryEndpoint:
    """An ASGI app sending what ``answer`` returns; for HEAD the server drops the body."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = self.answer(scope["state"], scope["headers"])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class InMemoryRoutes:
    """The innermost middleware the app declares: a GET of a route of the URL map whose endpoint
    is an ``InMemoryEndpoint`` is answered here, past Starlette's exception middleware and the
    router, which have nothing to do for it (a static path; nothing it raises is an exception
    those handle: a bug is answered 500 by ServerErrorMiddleware all the same). Every other
    request (HEAD and wrong methods included) goes on to the router."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.gets = {
            route.path: route
            for route in routes
            if isinstance(route, Route)
            and isinstance(route.endpoint, InMemoryEndpoint)
            and "GET" in (route.methods or ())
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            route = self.gets.get(scope["path"])
            if route is not None:
                # What the router puts in the scope for the route it chose.
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await route.endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)
