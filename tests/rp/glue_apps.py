"""The same small API built twice, on the Starlette glue and on the FastAPI dependency:
``/me`` (any token), ``/read`` and ``/write`` (that scope), ``/admin`` (role admin), and
``/revocable`` (any token, checked by introspection at idp).

No ``from __future__ import annotations``: FastAPI resolves the routes' annotations at run
time, and they name locals of ``add_show``."""

from typing import Annotated, Any

from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp_rp.bearer import Verifier
from idp_rp.fastapi import TokenDependency, install_error_handler
from idp_rp.starlette import BearerTokenMiddleware, requires_token, verified_token
from idp_rp.verifier import VerifiedToken

METADATA = "https://api.example/.well-known/oauth-protected-resource"


def answer(token: VerifiedToken) -> dict[str, Any]:
    return {"subject": token.subject, "roles": sorted(token.roles)}


def starlette_app(verifier: Verifier, introspector: Verifier) -> Starlette:
    async def show(request: Request) -> JSONResponse:
        return JSONResponse(answer(verified_token(request)))

    return Starlette(
        routes=[
            Route("/me", requires_token()(show)),
            Route("/read", requires_token(scopes=["read"])(show)),
            Route("/write", requires_token(scopes=["write"])(show)),
            Route("/admin", requires_token(roles=["admin"])(show)),
            Route("/revocable", requires_token(verifier=introspector)(show)),
        ],
        middleware=[
            Middleware(BearerTokenMiddleware, verifier=verifier, resource_metadata=METADATA)
        ],
    )


def fastapi_app(verifier: Verifier, introspector: Verifier) -> FastAPI:
    app = FastAPI()
    install_error_handler(app)
    routes = {
        "/me": TokenDependency(verifier, resource_metadata=METADATA),
        "/read": TokenDependency(verifier, scopes=["read"], resource_metadata=METADATA),
        "/write": TokenDependency(verifier, scopes=["write"], resource_metadata=METADATA),
        "/admin": TokenDependency(verifier, roles=["admin"], resource_metadata=METADATA),
        "/revocable": TokenDependency(introspector, resource_metadata=METADATA),
    }
    for path, dependency in routes.items():
        add_show(app, path, dependency)
    return app


def add_show(app: FastAPI, path: str, dependency: TokenDependency) -> None:
    """GET ``path``: the token ``dependency`` gives, as ``answer`` shows it."""

    @app.get(path)
    async def show(token: Annotated[VerifiedToken, Depends(dependency)]) -> dict[str, Any]:
        return answer(token)
