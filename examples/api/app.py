"""The example API of the seed stack: a Starlette app that trusts idp's access tokens.

    GET /api/greeting       any valid access token for this API: who the token says you are
    GET /api/admin/report   a token whose user has the role "admin"
    GET /.well-known/oauth-protected-resource   RFC 9728: which authorization server to ask

Run it next to idp (``scripts/serve``, on http://localhost:8000), from the repository root:

    PYTHONPATH=rp .venv/bin/uvicorn examples.api.app:app --port 8002

(or ``pip install "./rp[starlette]" uvicorn`` and drop PYTHONPATH). IDP_ISSUER (default
http://localhost:8000) and API_AUDIENCE (default http://localhost:8002) configure it; a client
gets tokens for it from idp once registered with ``--audience http://localhost:8002``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp_rp.clock import Clock
from idp_rp.protected_resource import metadata_route, metadata_url
from idp_rp.starlette import BearerTokenMiddleware, requires_token, verified_token
from idp_rp.verifier import TokenVerifier


@requires_token()
async def greeting(request: Request) -> JSONResponse:
    token = verified_token(request)
    name = token.claims.get("name") or token.subject
    return JSONResponse(
        {"greeting": f"Hello, {name}!", "subject": token.subject, "roles": sorted(token.roles)}
    )


@requires_token(roles=["admin"])
async def admin_report(request: Request) -> JSONResponse:
    token = verified_token(request)
    return JSONResponse({"report": "all systems nominal", "requested_by": token.subject})


def create_app(
    issuer: str, audience: str, *, clock: Clock | None = None, http: httpx.AsyncClient | None = None
) -> Starlette:
    """The API for tokens of ``issuer`` whose ``aud`` holds ``audience`` (also the resource
    identifier of its RFC 9728 document). ``clock`` and ``http`` are for tests."""
    verifier: TokenVerifier | None = None

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal verifier  # discovery needs idp up: done at start-up, not at import
        async with await TokenVerifier.from_issuer(
            issuer, audience, clock=clock, http=http
        ) as verifier:
            yield

    def current_verifier() -> TokenVerifier:
        assert verifier is not None, "the app's lifespan has not run"
        return verifier

    return Starlette(
        routes=[
            Route("/api/greeting", greeting),
            Route("/api/admin/report", admin_report),
            metadata_route(audience, [issuer], resource_name="Example API"),
        ],
        middleware=[
            Middleware(
                BearerTokenMiddleware,
                verifier=current_verifier,
                resource_metadata=metadata_url(audience),
            )
        ],
        lifespan=lifespan,
    )


app = create_app(
    os.environ.get("IDP_ISSUER", "http://localhost:8000"),
    os.environ.get("API_AUDIENCE", "http://localhost:8002"),
)
