"""Watching every request: a request id, one JSON request line and the request metrics."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
from collections.abc import AsyncIterator, Sequence
from time import perf_counter

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idp.logs import REQUEST_ID, REQUEST_LINES
from idp.metrics import TALLY
from idp.tasks import cancel

REQUEST_ID_HEADER = b"x-request-id"
# An id set by a proxy in front is kept if it is plain; anything else is replaced.
_ACCEPTABLE_ID = re.compile(rb"[A-Za-z0-9._-]{8,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
FLUSH_INTERVAL = 1.0  # seconds: request lines and request metrics are at most this late


class RequestObserver:
    """Pure ASGI middleware, the first the app declares (``idp.app.create_app``).

    Labels use the path of one of ``routes`` (or ``unmatched``) and a known method (or
    ``other``), so an attacker's made-up paths cannot grow the metrics; the query string is
    never logged. Request ids are unique, not secret: this process's random prefix and a
    counter.

    An exception that escapes is counted as a 500, and leaves the request id set: Starlette's
    ServerErrorMiddleware, outside every declared middleware, answers and logs it within this
    request's task (the server runs each request in a task of its own).
    """

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.paths = frozenset(route.path for route in routes if isinstance(route, Route))
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        request_id = _incoming_id(scope) or f"{self._prefix}{next(self._counter):08x}"
        own_header = (REQUEST_ID_HEADER, request_id.encode())
        context = REQUEST_ID.set(request_id)
        status = 500  # unless a response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), own_header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = perf_counter() - start
            path, method = scope["path"], scope["method"]
            route = path if path in self.paths else "unmatched"
            method = method if method in _METHODS else "other"
            TALLY.record(route, method, status, elapsed)
            if REQUEST_LINES.enabled:
                REQUEST_LINES.add(request_id, method, route, status, elapsed)
        REQUEST_ID.reset(context)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            return value.decode() if _ACCEPTABLE_ID.fullmatch(value) else None
    return None


def flush() -> None:
    REQUEST_LINES.flush()
    TALLY.flush()


@contextlib.asynccontextmanager
async def flushing() -> AsyncIterator[None]:
    """For the app's lifespan: flush every FLUSH_INTERVAL, and once more at the end."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            flush()

    task = asyncio.create_task(loop(), name="observe-flush")
    try:
        yield
    finally:
        await cancel(task)
        flush()
