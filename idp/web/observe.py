"""Per-request observation (pure ASGI): a request id, one JSON log line, the request metrics."""

from __future__ import annotations

import re
import secrets
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idp.logs import REQUEST_ID, request_log
from idp.metrics import LATENCY, REQUESTS

REQUEST_ID_HEADER = b"x-request-id"
# An id set by a proxy in front is kept if it is plain; anything else is replaced.
_ACCEPTABLE_ID = re.compile(rb"[A-Za-z0-9._-]{8,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Observe:
    """Labels use the route's path (or ``unmatched``) and a known method (or ``other``), so an
    attacker's made-up paths cannot grow the metrics; the query string is never logged."""

    def __init__(self, app: ASGIApp, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        request_id = _incoming_id(scope) or secrets.token_hex(8)
        encoded = request_id.encode()
        context = REQUEST_ID.set(request_id)
        status = 500  # unless a response starts: an exception escaped to the server

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (REQUEST_ID_HEADER, encoded)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = perf_counter() - start
            path = scope["path"]
            route = path if path in self.paths else "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            REQUESTS.labels(route, method, str(status)).inc()
            LATENCY.labels(route).observe(elapsed)
            request_log.info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
            REQUEST_ID.reset(context)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            return value.decode() if _ACCEPTABLE_ID.fullmatch(value) else None
    return None
