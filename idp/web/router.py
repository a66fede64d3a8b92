"""The app's router: Starlette's, finding a static route by one dictionary lookup.

Starlette's router tries each route's regex in turn, so an endpoint pays for every route listed
before it. Every idp path is static; anything the lookup does not settle exactly (a wrong
method, an unknown path) goes to Starlette's own matching, which gives the 405 with ``Allow``,
the redirect of a trailing slash, or the 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send


class StaticPathRouter(Router):
    def __init__(self, routes: Sequence[BaseRoute], **kwargs: Any) -> None:
        super().__init__(routes, **kwargs)
        self.static: dict[tuple[str, str], Route] = {}
        for route in routes:
            if isinstance(route, Route) and not route.param_convertors and route.methods:
                for method in route.methods:
                    self.static.setdefault((route.path, method), route)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.static.get((scope["path"], scope["method"]))
            if route is not None:
                # What Starlette's matching puts in the scope for a full match.
                scope.setdefault("router", self)
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await route.handle(scope, receive, send)
                return
        await super().app(scope, receive, send)
