"""Endpoints answered from bytes held in memory (JWKS, discovery), written as plain ASGI apps.

They are what every relying service fetches. Starlette's ``Route`` calls an endpoint that is
not a function as an ASGI app, so they go through the router and every middleware like any
route, without a ``Request`` or a ``Response`` being built for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.types import Receive, Scope, Send

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
