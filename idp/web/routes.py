"""The whole URL map in one place."""

from __future__ import annotations

from starlette.routing import Route

from idp.web.discovery import discovery
from idp.web.health import healthz, readyz
from idp.web.jwks import jwks
from idp.web.token import token

routes = [
    Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
    Route("/.well-known/oauth-authorization-server", discovery, methods=["GET"]),
    Route("/jwks.json", jwks, methods=["GET"]),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/token", token, methods=["POST"]),
]
