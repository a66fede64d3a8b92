"""``/.well-known/openid-configuration`` and ``/.well-known/oauth-authorization-server``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp.web.jwks import CORS_OPEN, JSON
from idp.web.state import AppState

# The metadata changes only with a new release or new settings, i.e. with a restart.
_HEADERS = [(b"cache-control", b"public, max-age=3600"), CORS_OPEN, (b"content-type", JSON)]


def discovery_answer(
    state: Mapping[str, Any], request_headers: list[tuple[bytes, bytes]]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Answered by the front layer (``idp.web.observe``), from memory."""
    body: bytes = state["discovery_body"]
    return 200, [*_HEADERS, (b"content-length", b"%d" % len(body))], body


async def discovery(request: Request[AppState]) -> Response:
    status, headers, body = discovery_answer(request.scope["state"], request.scope["headers"])
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response
