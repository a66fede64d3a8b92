"""CORS for browser apps (SPAs with a public client and PKCE).

Discovery and the JWKS are public (``*``). /token, /revoke and /userinfo answer an origin only if
it is the origin of one of the client's registered redirect URIs; never in credentials mode (the
browser sends no cookies, the app sends its tokens itself).

A preflight names no client (it carries no credentials and no body), so it is answered for the
origins of every enabled client's redirect URIs (``ClientRegistry.allows_origin``): the only
origins any real response could allow. Any other origin, ``null`` (sandboxed frames, ``file:``,
redirects) included, gets a 403 without ``Access-Control-Allow-Origin``, and the browser never
sends the request.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp.db.clients import Client
from idp.oauth.origins import client_origins
from idp.web.state import AppState

PREFLIGHT_MAX_AGE = "600"


def allow_origin(response: Response, request: Request[Any], client: Client | None) -> Response:
    """Let the browser hand ``response`` to the page if it comes from the client's origin."""
    origin = request.headers.get("origin")
    if origin is not None and client is not None and origin.lower() in client_origins(client):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


async def preflight(request: Request[AppState]) -> Response:
    """Fetch standard, CORS-preflight fetch: a status outside 200-299 or a missing
    ``Access-Control-Allow-Origin`` fails it; a refusal gives both."""
    origin = request.headers.get("origin")
    if origin is None:
        return Response(status_code=204, headers={"Allow": "GET, POST, OPTIONS"})
    if origin == "null" or not await request.state["clients"].allows_origin(origin):
        return Response(status_code=403, headers={"Vary": "Origin"})
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            "Vary": "Origin",
        },
    )
