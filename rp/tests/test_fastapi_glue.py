"""TokenDependency in a real FastAPI app whose verifier is made in its lifespan.

No ``from __future__ import annotations`` here: FastAPI resolves the routes' annotations at run
time, and ``Depends(user)`` names a local of ``create_app``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from joserfc.jwk import RSAKey

from conftest import AUDIENCE, ISSUER, METADATA, FrozenClock, asgi_client, bearer, claims_at, mint
from idp_rp import TokenVerifier, VerifiedToken
from idp_rp.fastapi import TokenDependency, install_error_handler
from jwks_server import JwksServer


def create_app(jwks_uri: str, clock: FrozenClock, http: httpx.AsyncClient) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.verifier = TokenVerifier.from_jwks_uri(
            jwks_uri, issuer=ISSUER, audience=AUDIENCE, clock=clock, http=http
        )
        yield

    app = FastAPI(lifespan=lifespan)
    install_error_handler(app)
    settings = {"realm": "api", "resource_metadata": METADATA}
    user = TokenDependency(lambda: app.state.verifier, **settings)
    writer = TokenDependency(lambda: app.state.verifier, scopes=["write"], **settings)
    admin = TokenDependency(lambda: app.state.verifier, roles=["admin"], **settings)

    @app.get("/me")
    async def me(token: Annotated[VerifiedToken, Depends(user)]) -> dict[str, str]:
        return {"subject": token.subject}

    @app.post("/write")
    async def write(token: Annotated[VerifiedToken, Depends(writer)]) -> dict[str, bool]:
        return {"ok": True}

    @app.get("/report")
    async def report(token: Annotated[VerifiedToken, Depends(admin)]) -> dict[str, list[str]]:
        return {"roles": sorted(token.roles)}

    return app


@pytest.fixture
async def client(
    jwks: JwksServer, clock: FrozenClock, http: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(jwks.url, clock, http)
    async with app.router.lifespan_context(app), asgi_client(app) as client:
        yield client


async def test_a_valid_token_is_given_to_the_route(
    client: httpx.AsyncClient, key: RSAKey, clock: FrozenClock
) -> None:
    answer = await client.get("/me", headers=bearer(mint(key, claims_at(clock))))
    assert (answer.status_code, answer.json()) == (200, {"subject": "user-1"})


async def test_no_token_is_401_with_the_challenge(client: httpx.AsyncClient) -> None:
    answer = await client.get("/me")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == (
        f'Bearer realm="api", resource_metadata="{METADATA}"'
    )
    assert answer.json()["error"] == "unauthorized"


async def test_an_expired_token_is_401_invalid_token(
    client: httpx.AsyncClient, key: RSAKey, clock: FrozenClock
) -> None:
    now = int(clock.now().timestamp())
    expired = mint(key, claims_at(clock, iat=now - 3600, exp=now - 120))
    answer = await client.get("/me", headers=bearer(expired))
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_token", "error_description": "the token has expired"}
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


async def test_a_missing_scope_is_403_insufficient_scope(
    client: httpx.AsyncClient, key: RSAKey, clock: FrozenClock
) -> None:
    answer = await client.post("/write", headers=bearer(mint(key, claims_at(clock, scope="read"))))
    assert answer.status_code == 403
    assert answer.json()["error"] == "insufficient_scope"
    assert answer.headers["www-authenticate"].startswith(
        'Bearer realm="api", error="insufficient_scope"'
    )


async def test_a_missing_role_is_403_and_the_role_admits(
    client: httpx.AsyncClient, key: RSAKey, clock: FrozenClock
) -> None:
    answer = await client.get("/report", headers=bearer(mint(key, claims_at(clock))))
    assert answer.status_code == 403
    assert answer.json()["error_description"] == "the user lacks the role admin"
    admin = bearer(mint(key, claims_at(clock, roles=["admin"])))
    assert (await client.get("/report", headers=admin)).json() == {"roles": ["admin"]}


async def test_a_malformed_header_is_400_invalid_request(client: httpx.AsyncClient) -> None:
    answer = await client.get("/me", headers={"Authorization": "Bearer a b"})
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    assert answer.headers["www-authenticate"].startswith(
        'Bearer realm="api", error="invalid_request"'
    )


async def test_the_openapi_document_declares_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["Bearer"] == {
        "type": "http",
        "scheme": "bearer",
    }
    assert document["paths"]["/me"]["get"]["security"] == [{"Bearer": []}]
