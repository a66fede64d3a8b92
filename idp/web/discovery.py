"""``/.well-known/openid-configuration`` and ``/.well-known/oauth-authorization-server``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.web.jwks import CORS_OPEN
from idp.web.state import AppState

_HEADERS = {"Cache-Control": "public, max-age=3600", **CORS_OPEN}


async def discovery(request: Request[AppState]) -> Response:
    return Response(
        request.state["discovery_body"], media_type="application/json", headers=_HEADERS
    )
