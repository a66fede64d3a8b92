"""The Starlette middleware and the FastAPI dependency (one parametrized app each) with tokens
from a real idp's /token, and the Introspector against idp's real /introspect and /revoke."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import asyncpg
import httpx
import pytest
from starlette.types import ASGIApp

from idp.clock import FrozenClock
from idp_rp import InvalidTokenError, TokenVerifier
from idp_rp.bearer import Verifier
from idp_rp.introspection import Introspector
from tests.conftest import Served
from tests.rp.glue_apps import METADATA, fastapi_app, starlette_app
from tests.rp.glue_stack import (
    API,
    bearer,
    client_token,
    http,
    idp,
    resource_server,
    user_token,
    verifier,
)

__all__ = ["http", "idp", "verifier"]  # fixtures

APPS: dict[str, Callable[[Verifier, Verifier], ASGIApp]] = {
    "starlette": starlette_app,
    "fastapi": fastapi_app,
}


@pytest.fixture
async def introspector(
    idp: Served, clock: FrozenClock, http: httpx.AsyncClient, pool: asyncpg.Pool
) -> Introspector:
    client_id, secret = await resource_server(pool, idp.settings)
    return await Introspector.from_issuer(
        idp.base_url,
        API,
        client_id=client_id,
        client_secret=secret,
        http=http,
        clock=clock,
        cache_ttl=timedelta(0),  # every call asks idp: a revocation is seen at once
    )


@pytest.fixture(params=sorted(APPS))
async def api(
    request: pytest.FixtureRequest, verifier: TokenVerifier, introspector: Introspector
) -> AsyncIterator[httpx.AsyncClient]:
    app = APPS[request.param](verifier, introspector)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


async def test_no_token_is_401_with_a_bare_challenge(api: httpx.AsyncClient) -> None:
    """RFC 6750 §3.1: no error attributes without a token; RFC 9728 §5.1 resource_metadata."""
    answer = await api.get("/me")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == f'Bearer resource_metadata="{METADATA}"'


async def test_a_tampered_idp_token_is_401_invalid_token(
    api: httpx.AsyncClient, http: httpx.AsyncClient, pool: asyncpg.Pool, idp: Served
) -> None:
    token, _ = await client_token(http, pool, idp.settings, "read")
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    answer = await api.get("/me", headers=bearer(tampered))
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_token", "error_description": "bad signature"}
    assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_a_token_without_the_scope_is_403_insufficient_scope_and_with_it_200(
    api: httpx.AsyncClient, http: httpx.AsyncClient, pool: asyncpg.Pool, idp: Served
) -> None:
    token, _ = await client_token(http, pool, idp.settings, "read")
    answer = await api.get("/write", headers=bearer(token))
    assert answer.status_code == 403
    assert answer.json()["error"] == "insufficient_scope"
    assert 'scope="write"' in answer.headers["www-authenticate"]
    assert (await api.get("/read", headers=bearer(token))).status_code == 200


async def test_a_user_without_the_role_is_403_and_an_admin_is_200(
    api: httpx.AsyncClient, idp: Served, pool: asyncpg.Pool
) -> None:
    """Roles from idp's user tokens (RFC 9068 §2.2.3.1), from the real code flow."""
    bob = await user_token(idp.base_url, pool, idp.settings, "bob@example.com", roles=["staff"])
    answer = await api.get("/admin", headers=bearer(bob))
    assert answer.status_code == 403
    assert answer.json() == {
        "error": "insufficient_scope",
        "error_description": "the user lacks the role admin",
    }
    ada = await user_token(idp.base_url, pool, idp.settings, "ada@example.com", roles=["admin"])
    answer = await api.get("/admin", headers=bearer(ada))
    assert answer.status_code == 200
    assert answer.json()["roles"] == ["admin"]


async def test_a_revoked_token_is_refused_by_introspection_at_once_not_by_the_jwt_verifier(
    api: httpx.AsyncClient,
    http: httpx.AsyncClient,
    pool: asyncpg.Pool,
    idp: Served,
    verifier: TokenVerifier,
    introspector: Introspector,
) -> None:
    """RFC 7009 revocation at idp: the JWT is still well signed and unexpired, so an offline
    verifier keeps accepting it until ``exp``; RFC 7662 introspection (cache_ttl 0) sees it at
    the next request."""
    token, (client_id, secret) = await client_token(http, pool, idp.settings, "read")
    assert (await api.get("/revocable", headers=bearer(token))).status_code == 200
    revoked = await http.post(
        "/revoke",
        auth=(client_id, secret),
        data={"token": token, "token_type_hint": "access_token"},
    )
    assert revoked.status_code == 200

    answer = await api.get("/revocable", headers=bearer(token))
    assert answer.status_code == 401
    assert answer.json()["error_description"] == "the token is not active"
    with pytest.raises(InvalidTokenError, match="not active"):
        await introspector.verify(token)
    assert (await api.get("/me", headers=bearer(token))).status_code == 200
    assert (await verifier.verify(token)).client_id == client_id


async def test_the_introspector_refuses_an_active_token_for_another_audience(
    http: httpx.AsyncClient, pool: asyncpg.Pool, idp: Served, clock: FrozenClock
) -> None:
    """RFC 7662 §4: idp says active (the caller may introspect it), the resource server still
    checks that it is the audience."""
    client_id, secret = await resource_server(pool, idp.settings)
    token, _ = await client_token(http, pool, idp.settings, "read")
    other = Introspector(
        f"{idp.base_url}/introspect",
        client_id=client_id,
        client_secret=secret,
        issuer=idp.base_url,
        audience="https://other.example",
        http=http,
        clock=clock,
    )
    with pytest.raises(InvalidTokenError, match="not for this audience"):
        await other.verify(token)


async def test_introspection_gives_the_same_roles_acr_and_auth_time_as_the_jwt(
    idp: Served, pool: asyncpg.Pool, verifier: TokenVerifier, introspector: Introspector
) -> None:
    """idp's /introspect answers the JWT's RFC 9068 claims too (RFC 7662 §2.2 allows them), so
    a ``roles=["admin"]`` route may use either verifier."""
    ada = await user_token(idp.base_url, pool, idp.settings, "ada@example.com", roles=["admin"])
    jwt, introspected = await verifier.verify(ada), await introspector.verify(ada)
    assert introspected.roles == jwt.roles == {"admin"}
    assert (introspected.acr, introspected.auth_time) == (jwt.acr, jwt.auth_time)
    assert introspected.auth_time is not None
