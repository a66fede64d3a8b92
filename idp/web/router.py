"""A router that finds static routes by dictionary lookup.

Starlette's router tries each route's regex in turn (~1 µs each); every idp path is static, so
the hot endpoints would otherwise pay for every route listed before them. Anything the lookup does
not settle exactly (a wrong method, an unknown path) goes to Starlette's own matching, which gives
the 405 with ``Allow`` or the 404.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send


class StaticPathRouter(Router):
    def __init__(self, routes: Sequence[BaseRoute], **kwargs: object) -> None:
        super().__init__(list(routes), **kwargs)  # type: ignore[arg-type]
        self._by_path_and_method: dict[tuple[str, str], Route] = {}
        for route in routes:
            if isinstance(route, Route) and not route.param_convertors and route.methods:
                for method in route.methods:
                    self._by_path_and_method.setdefault((route.path, method), route)

    def route_for(self, path: str, method: str) -> Route | None:
        """The static route serving ``method`` on ``path``, if there is one."""
        return self._by_path_and_method.get((path, method))

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.route_for(scope["path"], scope["method"])
            if route is not None:
                scope.setdefault("router", self)
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await route.handle(scope, receive, send)
                return
        await super().app(scope, receive, send)
