"""BearerTokenMiddleware and requires_token in a real Starlette app (over httpx's ASGI
transport), with tokens signed here and the JWKS served by a real HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conftest import ISSUER, METADATA, FrozenClock, asgi_client, bearer, claims_at, mint, new_key
from idp_rp import TokenVerifier
from idp_rp.starlette import BearerTokenMiddleware, requires_token, token_of, verified_token
from jwks_server import JwksServer


async def public(request: Request) -> Response:
    token = token_of(request)
    return JSONResponse({"subject": token.subject if token else None})


@requires_token()
async def me(request: Request) -> Response:
    return JSONResponse({"subject": verified_token(request).subject})


@requires_token(scopes=["write"])
async def write(request: Request) -> Response:
    return JSONResponse({"ok": True})


@requires_token(scopes=["read"], roles=["admin"])
async def report(request: Request) -> Response:
    return JSONResponse({"ok": True})


def app_with(verifier: TokenVerifier, other: TokenVerifier) -> Starlette:
    @requires_token(verifier=other)
    async def elsewhere(request: Request) -> Response:
        return JSONResponse({"aud": verified_token(request).claims["aud"]})

    holder = {"verifier": verifier}  # as a lifespan would set it, after the app is built
    return Starlette(
        routes=[
            Route("/public", public),
            Route("/me", me),
            Route("/write", write),
            Route("/report", report),
            Route("/elsewhere", elsewhere),
        ],
        middleware=[
            Middleware(
                BearerTokenMiddleware,
                verifier=lambda: holder["verifier"],
                realm="api",
                resource_metadata=METADATA,
            )
        ],
    )


@pytest.fixture
async def client(
    verifier: TokenVerifier, jwks: JwksServer, clock: FrozenClock, http: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    other = TokenVerifier.from_jwks_uri(
        jwks.url, issuer=ISSUER, audience="https://other.example", clock=clock, http=http
    )
    async with asgi_client(app_with(verifier, other)) as client:
        yield client


async def test_a_valid_token_reaches_the_endpoint_with_its_claims(
    client: httpx.AsyncClient, key: RSAKey, clock: FrozenClock
) -> None:
    answer = await client.get("/me", headers=bearer(mint(key, claims_at(clock))))
    assert answer.status_code == 200
    assert answer.json() == {"subject": "user-1"}


async def test_no_token_is_401_with_a_challenge_without_error_attributes(
    client: httpx.AsyncClient,
) -> None:
    """RFC 6750 §3.1; RFC 9728 §5.1 resource_metadata in the challenge."""
    answer = await client.get("/me")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == (
        f'Bearer realm="api", resource_metadata="{METADATA}"'
    )
    assert answer.json()["error"] == "unauthorized"


async def test_an_invalid_token_is_401_invalid_token(
    client: httpx.AsyncClient, key: RSAKey, clock: FrozenClock
) -> None:
    forged = mint(new_key("k1"), claims_at(clock))  # a published kid, another key
    answer = await client.get("/me", headers=bearer(forged))
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_token", "error_description": "bad signature"}
    assert answer.headers["www-authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="bad signature", '
        f'resource_metadata="{METADATA}"'
    )


async def test_a_missing_scope_is_403_insufficient_scope(
    client: httpx.AsyncClient, key: RSAKey, clock: FrozenClock
) -> None:
    answer = await client.get("/write", headers=bearer(mint(key, claims_at(clock, scope="read"))))
    assert answer.status_code == 403
    assert answer.json()["error"] == "insufficient_scope"
    assert 'scope="write"' in answer.headers["www-authenticate"]


async def test_a_missing_role_is_403_and_the_role_admits(
    client: httpx.AsyncClient, key: RSAKey, clock: FrozenClock
) -> None:
    staff = mint(key, claims_at(clock, roles=["staff"]))
    answer = await client.get("/report", headers=bearer(staff))
    assert answer.status_code == 403
    assert answer.json() == {
        "error": "insufficient_scope",
        "error_description": "the user lacks the role admin",
    }
    admin = mint(key, claims_at(clock, roles=["staff", "admin"]))
    assert (await client.get("/report", headers=bearer(admin))).status_code == 200


async def test_two_authorization_headers_are_400_invalid_request(
    client: httpx.AsyncClient, key: RSAKey, clock: FrozenClock
) -> None:
    token = mint(key, claims_at(clock))
    answer = await client.get(
        "/me", headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert answer.headers["www-authenticate"] == (
        'Bearer realm="api", error="invalid_request", '
        'error_description="more than one Authorization header", '
        f'resource_metadata="{METADATA}"'
    )


async def test_a_public_route_sees_the_token_or_none_and_never_refuses(
    client: httpx.AsyncClient, key: RSAKey, clock: FrozenClock
) -> None:
    assert (await client.get("/public")).json() == {"subject": None}
    assert (await client.get("/public", headers=bearer("garbage"))).json() == {"subject": None}
    valid = bearer(mint(key, claims_at(clock)))
    assert (await client.get("/public", headers=valid)).json() == {"subject": "user-1"}


async def test_a_routes_own_verifier_overrides_the_middlewares(
    client: httpx.AsyncClient, key: RSAKey, clock: FrozenClock
) -> None:
    """``requires_token(verifier=...)``: the route's verifier decides, not the middleware's."""
    ours = bearer(mint(key, claims_at(clock)))
    answer = await client.get("/elsewhere", headers=ours)
    assert answer.status_code == 401
    assert answer.json()["error_description"] == "the token is not for this audience"
    theirs = bearer(mint(key, claims_at(clock, aud="https://other.example")))
    assert (await client.get("/elsewhere", headers=theirs)).json() == {
        "aud": "https://other.example"
    }


async def test_a_routes_own_verifier_works_without_the_middleware(
    verifier: TokenVerifier, key: RSAKey, clock: FrozenClock
) -> None:
    """``requires_token(verifier=...)`` alone: the same RFC 6750 answers, a bare challenge."""

    @requires_token(verifier=verifier)
    async def alone(request: Request) -> Response:
        return JSONResponse({"subject": verified_token(request).subject})

    async with asgi_client(Starlette(routes=[Route("/alone", alone)])) as client:
        answer = await client.get("/alone")
        assert (answer.status_code, answer.headers["www-authenticate"]) == (401, "Bearer")
        valid = bearer(mint(key, claims_at(clock)))
        assert (await client.get("/alone", headers=valid)).json() == {"subject": "user-1"}


async def test_a_jwks_outage_is_503_temporarily_unavailable_not_invalid_token(
    client: httpx.AsyncClient, jwks: JwksServer, key: RSAKey, clock: FrozenClock
) -> None:
    """The cached keys went stale and idp's JWKS answers 500: the token is refused (fail
    closed) with 503 and no challenge, since a new token would not help (a 401 invalid_token
    would send the client to sign in again for nothing)."""
    token = mint(key, claims_at(clock, exp=int(clock.now().timestamp()) + 3600))
    assert (await client.get("/me", headers=bearer(token))).status_code == 200
    clock.advance(timedelta(seconds=600))  # past the max-age the keys were served with
    jwks.failure = 500
    answer = await client.get("/me", headers=bearer(token))
    assert answer.status_code == 503
    assert answer.json()["error"] == "temporarily_unavailable"
    assert "www-authenticate" not in answer.headers
