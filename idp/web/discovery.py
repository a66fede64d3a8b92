"""``/.well-known/openid-configuration`` and ``/.well-known/oauth-authorization-server``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.web.jwks import CORS_OPEN, JSON
from idp.web.state import AppState

# The metadata changes only with a new release or new settings, i.e. with a restart.
_HEADERS = [(b"cache-control", b"public, max-age=3600"), CORS_OPEN]


async def discovery(request: Request[AppState]) -> Response:
    response = Response(request.state["discovery_body"], media_type=JSON)
    response.raw_headers.extend(_HEADERS)
    return response
