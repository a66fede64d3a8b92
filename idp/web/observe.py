"""The outermost ASGI layer: a request id, one JSON log line and the request metrics for every
request; the hottest read paths (JWKS, discovery) answered right here, and the hottest API
endpoints called directly (idp.web.direct).

Those two are what every relying service fetches; they are bytes held in memory. Answering them
here skips Starlette's error middleware, exception middleware, router and Request/Response
objects, about a quarter of their cost (``scripts/bench``); everything else goes to the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
from collections.abc import AsyncIterator, Callable, Mapping
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idp.logs import REQUEST_ID, REQUEST_LINES
from idp.metrics import TALLY
from idp.tasks import cancel

REQUEST_ID_HEADER = b"x-request-id"
# An id set by a proxy in front is kept if it is plain; anything else is replaced.
_ACCEPTABLE_ID = re.compile(rb"[A-Za-z0-9._-]{8,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
FLUSH_INTERVAL = 1.0  # seconds: request lines and request metrics are at most this late

Headers = list[tuple[bytes, bytes]]
# A hot path: (lifespan state, request headers) -> (status, response headers, body).
HotAnswer = Callable[[Mapping[str, Any], Headers], tuple[int, Headers, bytes]]


class Front:
    """Labels use the route's path (or ``unmatched``) and a known method (or ``other``), so an
    attacker's made-up paths cannot grow the metrics; the query string is never logged.

    Request ids are unique, not secret: this process's random prefix and a counter."""

    def __init__(
        self,
        app: ASGIApp,
        paths: frozenset[str],
        hot: Mapping[tuple[str, str], HotAnswer],
        direct: Mapping[tuple[str, str], ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self.paths = paths
        self.hot = dict(hot)
        self.direct = dict(direct or {})  # endpoints called past Starlette (idp.web.direct)
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        request_id = _incoming_id(scope) or f"{self._prefix}{next(self._counter):08x}"
        encoded = request_id.encode()
        context = REQUEST_ID.set(request_id)
        status = 500  # unless a response starts: an exception escaped to the server
        path, method = scope["path"], scope["method"]
        key = (path, method)
        answer = self.hot.get(key)
        try:
            if answer is not None:
                status, headers, body = answer(scope["state"], scope["headers"])
                _add_own_headers(headers, encoded)
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = [*message.get("headers", ())]
                    _add_own_headers(headers, encoded)
                    message = {**message, "headers": headers}
                await send(message)

            await self.direct.get(key, self.app)(scope, receive, send_with_id)
        finally:
            elapsed = perf_counter() - start
            route = path if path in self.paths else "unmatched"
            method = method if method in _METHODS else "other"
            TALLY.record(route, method, status, elapsed)
            if REQUEST_LINES.enabled:
                REQUEST_LINES.add(request_id, method, route, status, elapsed)
            REQUEST_ID.reset(context)


def _add_own_headers(headers: list[tuple[bytes, bytes]], request_id: bytes) -> None:
    """What every response gets here: its request id."""
    headers.append((REQUEST_ID_HEADER, request_id))


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
