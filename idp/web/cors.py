"""CORS for browser apps (SPAs with a public client and PKCE).

Discovery and the JWKS are public (``*``). /token and /userinfo answer an origin only if it is
the origin of one of the client's registered redirect URIs; never in credentials mode (the
browser sends no cookies, the app sends its tokens itself).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from idp.db.clients import Client

PREFLIGHT_MAX_AGE = "600"


def origin_of(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def client_origins(client: Client) -> set[str]:
    return {origin for uri in client.redirect_uris if (origin := origin_of(uri)) is not None}


def allow_origin(response: Response, request: Request[Any], client: Client | None) -> Response:
    """Let the browser hand ``response`` to the page if it comes from the client's origin."""
    origin = request.headers.get("origin")
    if origin is not None and client is not None and origin.lower() in client_origins(client):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


async def preflight(request: Request) -> Response:
    """The preflight itself reveals nothing; each real response decides whether the page may
    read it (``allow_origin``)."""
    origin = request.headers.get("origin")
    if origin is None:
        return Response(status_code=204, headers={"Allow": "GET, POST, OPTIONS"})
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
