"""A replayed authorization code revokes everything its first exchange issued: the access
token, and the refresh family it started with every access token issued from that family
(RFC 6749 §4.1.2, RFC 9700 §4.5)."""

from __future__ import annotations

import asyncpg
import jwt as pyjwt
import pytest

from idp.db.clients import Client
from idp.db.users import User
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error, make_client, make_user
from tests.faults import audited_commits_fail
from tests.oauth.flow import (
    Authorization,
    authorize_code,
    deny_lists_trusted,
    exchange_code,
    introspect,
    refresh,
)

pytestmark = pytest.mark.usefixtures("real_time")  # PyJWT checks exp and iat against the real clock

REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"


async def refreshing_client(
    pool: asyncpg.Pool, settings: Settings
) -> tuple[Client, str, User, Authorization]:
    """A first-party client with refresh tokens and its secret, a user, and a request of that
    client for ``openid email``."""
    client, secret = await make_client(
        pool, settings, grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,), scopes=("openid", "email", "offline_access"),
        first_party=True,
    )  # fmt: skip
    user = await make_user(pool)
    return client, secret, user, Authorization(client.client_id, REDIRECT, scope="openid email")


def jti(tokens: dict[str, str]) -> str:
    claims = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})
    return str(claims["jti"])


@pytest.mark.parametrize("refreshes", [0, 2])
async def test_a_replayed_code_revokes_the_refresh_family_and_all_its_access_tokens(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, refreshes: int
) -> None:
    """The client refreshed ``refreshes`` times since the exchange; then the code comes back.
    The refresh family dies: its current token no longer refreshes nor introspects active, and
    every access token issued from it is deny-listed."""
    client, secret, user, auth = await refreshing_client(pool, settings)
    auth_pair = (client.client_id, secret)
    async with app_instance() as instance:
        http = instance.client
        code = await authorize_code(http, auth, user.email, PASSWORD)
        first = await exchange_code(http, client.client_id, secret, code, auth)
        assert first.status_code == 200, first.text
        issued = [first.json()]
        for _ in range(refreshes):
            response = await refresh(http, auth_pair, issued[-1]["refresh_token"])
            assert response.status_code == 200, response.text
            issued.append(response.json())
        current = issued[-1]["refresh_token"]
        assert (await introspect(http, auth_pair, current))["active"] is True

        replay = await exchange_code(http, client.client_id, secret, code, auth)
        assert_oauth_error(replay, 400, "invalid_grant")

        assert_oauth_error(await refresh(http, auth_pair, current), 400, "invalid_grant")
        assert await introspect(http, auth_pair, current) == {"active": False}
        for tokens in issued:
            assert await introspect(http, auth_pair, tokens["access_token"]) == {"active": False}
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            assert (await http.get("/userinfo", headers=bearer)).status_code == 401
    denied = set(await pool.fetchval("SELECT array_agg(jti) FROM revoked_access_tokens"))
    assert {jti(tokens) for tokens in issued} <= denied
    family = await pool.fetchrow("SELECT id, revoked_reason FROM refresh_families")
    assert family is not None
    assert family["revoked_reason"] == "authorization code replayed"
    event = await pool.fetchrow(
        "SELECT actor, subject FROM audit_log WHERE action = 'authorization_code.replayed'"
    )
    assert event is not None
    assert (event["actor"], event["subject"]) == (f"client:{client.client_id}", str(family["id"]))


async def test_a_code_presented_by_another_client_revokes_nothing(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """Only the client the code was issued to replays it: another client that learned the code
    gets invalid_grant and cannot use it to end the owner's grant."""
    client, secret = await make_client(
        pool, settings, grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,), scopes=("openid", "offline_access"), first_party=True,
    )  # fmt: skip
    other, other_secret = await make_client(
        pool, settings, grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,), scopes=("openid", "offline_access"), first_party=True,
    )  # fmt: skip
    user = await make_user(pool)
    auth = Authorization(client.client_id, REDIRECT, scope="openid")
    async with app_instance() as instance:
        http = instance.client
        code = await authorize_code(http, auth, user.email, PASSWORD)
        first = await exchange_code(http, client.client_id, secret, code, auth)
        assert first.status_code == 200, first.text

        stolen = await exchange_code(http, other.client_id, other_secret, code, auth)
        assert_oauth_error(stolen, 400, "invalid_grant")

        renewed = await refresh(http, (client.client_id, secret), first.json()["refresh_token"])
        assert renewed.status_code == 200, renewed.text
    assert await pool.fetchval("SELECT count(*) FROM revoked_access_tokens") == 0


async def test_a_replay_whose_commit_fails_revokes_nothing_not_even_in_this_process(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """The replay's revocation reaches this process's deny-list only once the exchange's
    transaction commits: a failed commit leaves the access token accepted, here as in the
    database; the next replay revokes it at once."""
    client, secret, user, auth = await refreshing_client(pool, settings)
    auth_pair = (client.client_id, secret)
    async with app_instance() as instance:
        http = instance.client
        code = await authorize_code(http, auth, user.email, PASSWORD)
        first = await exchange_code(http, client.client_id, secret, code, auth)
        assert first.status_code == 200, first.text
        access_token = first.json()["access_token"]
        await deny_lists_trusted(instance)

        async with audited_commits_fail(pool):
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                await exchange_code(http, client.client_id, secret, code, auth)
        assert await pool.fetchval("SELECT count(*) FROM revoked_access_tokens") == 0
        await deny_lists_trusted(instance)  # answered from memory
        assert (await introspect(http, auth_pair, access_token))["active"] is True

        replay = await exchange_code(http, client.client_id, secret, code, auth)
        assert_oauth_error(replay, 400, "invalid_grant")
        assert await introspect(http, auth_pair, access_token) == {"active": False}
