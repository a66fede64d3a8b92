"""Reuse detection fires only on a genuine earlier token (RFC 9700 §4.14.2): a token forged
from a family's handle is refused and changes nothing, and no access token reveals a handle."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt as pyjwt
import pytest

from idp.db import refresh_tokens
from idp.db.clients import Client
from idp.hashing import digest
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error, make_client, make_user
from tests.oauth.flow import Authorization, authorize_code, exchange_code

pytestmark = pytest.mark.usefixtures("real_time")  # PyJWT checks exp and iat against the real clock

REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"


async def refresh_client(pool: asyncpg.Pool, settings: Settings) -> tuple[Client, str]:
    return await make_client(
        pool, settings, grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,), scopes=("openid", "offline_access"), first_party=True,
    )  # fmt: skip


async def sign_in(http: httpx.AsyncClient, client: Client, secret: str) -> dict[str, str]:
    auth = Authorization(client.client_id, REDIRECT, scope="openid")
    code = await authorize_code(http, auth, "alice@example.com", PASSWORD)
    response = await exchange_code(http, client.client_id, secret, code, auth)
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


async def refresh(
    http: httpx.AsyncClient, client: Client, secret: str, token: str
) -> httpx.Response:
    return await http.post(
        "/token",
        auth=(client.client_id, secret),
        data={"grant_type": "refresh_token", "refresh_token": token},
    )


async def rotated(http: httpx.AsyncClient, client: Client, secret: str, token: str) -> str:
    response = await refresh(http, client, secret, token)
    assert response.status_code == 200, response.text
    successor: str = response.json()["refresh_token"]
    return successor


async def introspect(http: httpx.AsyncClient, client: Client, secret: str, token: str) -> Any:
    response = await http.post(
        "/introspect", auth=(client.client_id, secret), data={"token": token}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def reuse_events(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'refresh.reuse_detected'"
    )
    return count


def handle(token: str) -> str:
    return token.split(".")[0]


def secret_of(token: str) -> str:
    return token.split(".")[2]


# Forgeries from what someone without the family's earlier tokens may have: its handle (and
# the generation, counted from 0), the current token, another family's genuine token.
FORGED: dict[str, Callable[[list[str], str], str]] = {
    "handle-only": lambda family, other: handle(family[0]),
    "first-generation-any-secret": lambda family, other: (
        f"{handle(family[0])}.0.{secrets.token_urlsafe(32)}"
    ),
    "earlier-generation-current-secret": lambda family, other: (
        f"{handle(family[0])}.1.{secret_of(family[-1])}"
    ),
    "another-familys-secret": lambda family, other: f"{handle(family[0])}.0.{secret_of(other)}",
}


@pytest.mark.parametrize("forge", FORGED.values(), ids=FORGED.keys())
async def test_a_forged_earlier_generation_is_refused_and_the_family_survives(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    forge: Callable[[list[str], str], str],
) -> None:
    """The family has refreshed twice (its current token is generation 2). A token of an
    earlier generation whose secret the family never issued is no reuse: invalid_grant, the
    family stays alive, its current token still refreshes, and no reuse is recorded."""
    client, secret = await refresh_client(pool, settings)
    await make_user(pool)
    async with app_instance() as instance:
        http = instance.client
        family = [(await sign_in(http, client, secret))["refresh_token"]]
        for _ in range(2):
            family.append(await rotated(http, client, secret, family[-1]))
        other = (await sign_in(http, client, secret))["refresh_token"]
        forged = forge(family, other)
        assert forged not in family

        assert_oauth_error(await refresh(http, client, secret, forged), 400, "invalid_grant")

        assert (await introspect(http, client, secret, family[-1]))["active"] is True
        assert (await refresh(http, client, secret, family[-1])).status_code == 200
    assert (
        await pool.fetchval("SELECT count(*) FROM refresh_families WHERE revoked_at IS NOT NULL")
        == 0
    )
    assert await reuse_events(pool) == 0


async def test_no_access_token_jti_carries_the_family_handle(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """Access tokens go to resource servers, which must not learn enough to present a token of
    the family: their jti holds no part of the refresh token (handle or secret), and no form of
    the jti is taken for a refresh token."""
    client, secret = await refresh_client(pool, settings)
    await make_user(pool)
    async with app_instance() as instance:
        http = instance.client
        issued = [await sign_in(http, client, secret)]
        for _ in range(2):
            response = await refresh(http, client, secret, issued[-1]["refresh_token"])
            assert response.status_code == 200, response.text
            issued.append(response.json())
        refresh_parts = {
            part for tokens in issued for part in (
                handle(tokens["refresh_token"]), secret_of(tokens["refresh_token"])
            )
        }  # fmt: skip
        for tokens in issued:
            jti = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})["jti"]
            assert not any(part in jti for part in refresh_parts), jti
            for posing in (jti, jti.split(".")[0], f"{jti.split('.')[0]}.0.x", f"{jti}.x"):
                assert_oauth_error(
                    await refresh(http, client, secret, posing), 400, "invalid_grant"
                )
        assert (await refresh(http, client, secret, issued[-1]["refresh_token"])).status_code == 200
    assert await reuse_events(pool) == 0


async def family_with_random_secrets(
    pool: asyncpg.Pool, settings: Settings, client: Client, user_id: uuid.UUID
) -> str:
    """A family as idp started them before secrets were derived: its token's secret random."""
    now = datetime.now(UTC)
    family = refresh_tokens.Family(
        id=uuid.uuid4(), client_id=client.client_id, user_id=user_id, sid="sid",
        scopes=["openid"], audience=[settings.issuer], auth_time=now,
        expires_at=now + timedelta(days=1),
    )  # fmt: skip
    handle = secrets.token_urlsafe(16)
    token = f"{handle}.0.{secrets.token_urlsafe(32)}"
    await refresh_tokens.insert_family(
        pool, family, digest(handle), digest(token), now, settings.refresh_idle_ttl
    )
    return token


async def test_a_family_started_before_derived_secrets_keeps_refreshing_and_detecting_reuse(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A token with a random secret refreshes as before; once replaced, it is still known by
    its digest (the family's previous token), so presenting it again revokes the family."""
    client, secret = await refresh_client(pool, settings)
    user = await make_user(pool)
    async with app_instance() as instance:
        http = instance.client
        legacy = await family_with_random_secrets(pool, settings, client, user.id)
        current = await rotated(http, client, secret, legacy)
        current = await rotated(http, client, secret, current)
        assert_oauth_error(await refresh(http, client, secret, legacy), 400, "invalid_grant")
        assert await reuse_events(pool) == 0, "two generations back: it cannot be verified"
        assert (await introspect(http, client, secret, current))["active"] is True

        legacy = await family_with_random_secrets(pool, settings, client, user.id)
        successor = await rotated(http, client, secret, legacy)
        assert_oauth_error(await refresh(http, client, secret, legacy), 400, "invalid_grant")
        assert_oauth_error(await refresh(http, client, secret, successor), 400, "invalid_grant")
    assert await reuse_events(pool) == 1


async def test_a_token_issued_before_migration_0010_is_refused_and_changes_nothing(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A token issued before migration 0010 (43 characters, no dots) is no refresh token any
    more, though the migration made it its family's handle and current token: /token refuses it
    with invalid_grant, /introspect finds it inactive, /revoke answers 200 (RFC 7009 §2.2), and
    nothing is revoked."""
    client, secret = await refresh_client(pool, settings)
    user = await make_user(pool)
    legacy = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    family = refresh_tokens.Family(
        id=uuid.uuid4(), client_id=client.client_id, user_id=user.id, sid="sid",
        scopes=["openid"], audience=[settings.issuer], auth_time=now,
        expires_at=now + timedelta(days=1),
    )  # fmt: skip
    await refresh_tokens.insert_family(  # as migration 0010 left it
        pool, family, digest(legacy), digest(legacy), now, settings.refresh_idle_ttl
    )
    async with app_instance() as instance:
        http = instance.client
        assert_oauth_error(await refresh(http, client, secret, legacy), 400, "invalid_grant")
        assert await introspect(http, client, secret, legacy) == {"active": False}
        revoked = await http.post(
            "/revoke", auth=(client.client_id, secret), data={"token": legacy}
        )
        assert revoked.status_code == 200, revoked.text
    assert (
        await pool.fetchval("SELECT count(*) FROM refresh_families WHERE revoked_at IS NOT NULL")
        == 0
    )
    assert await reuse_events(pool) == 0
