"""Refresh tokens: rotation on every use, reuse detection that kills the family, a grace window
for honest retries, idle and absolute expiry, scope narrowing, binding to the client."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
import jwt as pyjwt
import pytest
from prometheus_client import REGISTRY

from idp.clock import FrozenClock
from idp.db import refresh_tokens
from idp.oauth import refresh_format
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error, make_client, make_user
from tests.faults import audited_commits_fail
from tests.oauth.flow import REDIRECT, App, app_with_refresh, deny_lists_trusted, introspect

pytestmark = pytest.mark.usefixtures("real_time")


async def revoked_families(pool: asyncpg.Pool) -> int:
    revoked: int = await pool.fetchval(
        "SELECT count(*) FROM refresh_families WHERE revoked_at IS NOT NULL"
    )
    return revoked


async def test_each_refresh_rotates_and_a_new_id_token_comes_without_nonce(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        first = await app.sign_in()
        second = await app.refresh(first["refresh_token"])
        assert second.status_code == 200, second.text
        body = second.json()
        assert body["refresh_token"] != first["refresh_token"]
        assert await app.userinfo_status(body["access_token"]) == 200
        claims = pyjwt.decode(body["id_token"], options={"verify_signature": False})
        assert "nonce" not in claims  # OIDC Core §12.2
        assert (
            claims["sub"]
            == pyjwt.decode(first["id_token"], options={"verify_signature": False})["sub"]
        )
        third = await app.refresh(body["refresh_token"])
        assert third.status_code == 200


async def test_theft_replaying_a_used_token_kills_the_family_and_its_access_tokens(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        r1 = await app.sign_in()
        r2 = (await app.refresh(r1["refresh_token"])).json()  # the app refreshes: R1 -> R2

        attacker = await app.refresh(r1["refresh_token"])  # the thief replays R1
        assert_oauth_error(attacker, 400, "invalid_grant")

        assert_oauth_error(await app.refresh(r2["refresh_token"]), 400, "invalid_grant")
        assert await app.userinfo_status(r1["access_token"]) == 401
        assert await app.userinfo_status(r2["access_token"]) == 401
    audit = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'refresh.reuse_detected'"
    )
    assert audit == 1


async def test_fifty_concurrent_refreshes_without_grace_give_one_success_then_revoke(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        token = (await app.sign_in())["refresh_token"]
        results = await asyncio.gather(*(app.refresh(token) for _ in range(50)))
        winners = [r for r in results if r.status_code == 200]
        assert len(winners) == 1
        assert all(r.json()["error"] == "invalid_grant" for r in results if r not in winners)
        successor = winners[0].json()["refresh_token"]
        assert_oauth_error(await app.refresh(successor), 400, "invalid_grant")
    assert await revoked_families(pool) == 1


async def test_fifty_concurrent_refreshes_within_grace_all_get_the_same_successor(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance(refresh_reuse_grace=timedelta(seconds=30)) as instance:
        app = await app_with_refresh(instance, pool, settings)
        token = (await app.sign_in())["refresh_token"]
        results = await asyncio.gather(*(app.refresh(token) for _ in range(50)))
        assert {r.status_code for r in results} == {200}
        assert len({r.json()["refresh_token"] for r in results}) == 1
        assert len({r.json()["access_token"] for r in results}) == 1
        successor = results[0].json()["refresh_token"]
        assert (await app.refresh(successor)).status_code == 200, "the family stays alive"
    assert await revoked_families(pool) == 0


async def test_a_retry_after_the_grace_window_is_reuse(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    async with app_instance(refresh_reuse_grace=timedelta(seconds=30)) as instance:
        app = await app_with_refresh(instance, pool, settings)
        token = (await app.sign_in())["refresh_token"]
        assert (await app.refresh(token)).status_code == 200
        clock.advance(timedelta(seconds=31))
        assert_oauth_error(await app.refresh(token), 400, "invalid_grant")
    assert await revoked_families(pool) == 1


async def test_idle_and_absolute_expiry_follow_the_clock(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    async with app_instance(
        refresh_idle_ttl=timedelta(hours=1), refresh_token_ttl=timedelta(hours=3)
    ) as instance:
        app = await app_with_refresh(instance, pool, settings)
        idle = (await app.sign_in())["refresh_token"]
        clock.advance(timedelta(hours=1, seconds=1))
        assert_oauth_error(await app.refresh(idle), 400, "invalid_grant")

        token = (await app.sign_in())["refresh_token"]
        for _ in range(3):  # used every 50 minutes: never idle, but the family ages
            clock.advance(timedelta(minutes=50))
            response = await app.refresh(token)
            assert response.status_code == 200, response.text
            token = response.json()["refresh_token"]
        clock.advance(timedelta(minutes=31))  # 3h01m after sign-in
        assert_oauth_error(await app.refresh(token), 400, "invalid_grant")


async def test_scope_may_narrow_but_never_widen(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        token = (await app.sign_in(scope="openid email"))["refresh_token"]
        wider = await app.refresh(token, scope="openid email roles")
        assert_oauth_error(wider, 400, "invalid_scope")
        narrower = await app.refresh(token, scope="openid")  # the refused try cost nothing
        assert narrower.status_code == 200, narrower.text
        assert narrower.json()["scope"] == "openid"


async def test_another_client_cannot_use_the_token_and_does_not_spend_it(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        token = (await app.sign_in())["refresh_token"]
        other, other_secret = await make_client(
            pool, settings, grant_types=("authorization_code", "refresh_token"),
            redirect_uris=(REDIRECT,),
        )  # fmt: skip
        stolen = await instance.client.post(
            "/token",
            auth=(other.client_id, other_secret),
            data={"grant_type": "refresh_token", "refresh_token": token},
        )
        assert_oauth_error(stolen, 400, "invalid_grant")
        assert (await app.refresh(token)).status_code == 200


async def test_a_change_to_the_user_reaches_the_next_refreshes_and_disabling_ends_them(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A refresh takes the user from the user cache, which any change to a user invalidates
    (NOTIFY): new roles reach the new tokens within a second, as they reach /userinfo. Disabling
    the user, even by plain SQL, revokes the family at once (migration 0011)."""
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings, roles=("reader",))
        token = (await app.sign_in())["refresh_token"]
        refreshed = (await app.refresh(token)).json()  # the user is cached now
        assert access_claims(refreshed)["roles"] == ["reader"]

        await pool.execute("UPDATE users SET roles = '{editor}'")
        deadline = time.monotonic() + 1
        while access_claims(refreshed)["roles"] != ["editor"]:
            assert time.monotonic() < deadline, "the old roles still issued after 1 s"
            await asyncio.sleep(0.01)
            response = await app.refresh(refreshed["refresh_token"])
            assert response.status_code == 200, response.text
            refreshed = response.json()

        await pool.execute("UPDATE users SET disabled = true")
        assert_oauth_error(await app.refresh(refreshed["refresh_token"]), 400, "invalid_grant")
    reason = await pool.fetchval("SELECT revoked_reason FROM refresh_families")
    assert reason == "user disabled"


def access_claims(tokens: dict[str, str]) -> dict[str, Any]:
    claims: dict[str, Any] = pyjwt.decode(
        tokens["access_token"], options={"verify_signature": False}
    )
    return claims


async def test_refreshes_that_miss_the_user_cache_do_not_wait_for_each_others_connections(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A user not cached yet is read on the connection the rotation holds. On a second one, 24
    refreshes of 24 users at once would hold the pool's 10 connections and wait for more."""
    async with app_instance() as instance:
        apps = [
            await app_with_refresh(instance, pool, settings, email=f"user{i}@example.com")
            for i in range(24)
        ]
        tokens = [(await app.sign_in())["refresh_token"] for app in apps]  # none cached
        async with asyncio.timeout(10):  # waiting for each other, they would never finish
            responses = await asyncio.gather(
                *(app.refresh(token) for app, token in zip(apps, tokens, strict=True))
            )
    assert [response.status_code for response in responses] == [200] * 24


async def test_clients_without_the_grant_get_no_refresh_token(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, secret = await make_client(
        pool, settings, grant_types=("authorization_code",), redirect_uris=(REDIRECT,),
        scopes=("openid",), first_party=True,
    )  # fmt: skip
    user = await make_user(pool)
    async with app_instance() as instance:
        app = App(instance, client.client_id, secret, user.email)
        tokens = await app.sign_in(scope="openid")
    assert "refresh_token" not in tokens
    stored = await pool.fetchval("SELECT count(*) FROM refresh_families")
    assert stored == 0


async def test_a_token_replaced_generations_ago_still_revokes_the_family(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """RFC 9700 §4.14.2: the thief refreshed the stolen token three times before the app came
    back with its copy. The copy is three generations old, and still revokes the family."""
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        stolen = await app.sign_in()
        thief = stolen
        for _ in range(3):
            response = await app.refresh(thief["refresh_token"])
            assert response.status_code == 200, response.text
            thief = response.json()

        assert_oauth_error(await app.refresh(stolen["refresh_token"]), 400, "invalid_grant")
        assert_oauth_error(await app.refresh(thief["refresh_token"]), 400, "invalid_grant")
        assert await app.userinfo_status(thief["access_token"]) == 401
    audit = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'refresh.reuse_detected'"
    )
    assert audit == 1


def _swap_last(text: str) -> str:
    return text[:-1] + ("A" if text[-1] != "A" else "B")


MANGLED = {
    "secret-changed": lambda token: _swap_last(token),
    "secret-cut-short": lambda token: token[:-5],
    "generation-ahead": lambda token: ".".join(
        [token.split(".")[0], str(int(token.split(".")[1]) + 1), token.split(".")[2]]
    ),
    "handle-changed": lambda token: _swap_last(token.split(".")[0]) + token[22:],
    "a-part-more": lambda token: token + ".x",
    "dots-removed": lambda token: token.replace(".", ""),
}


@pytest.mark.parametrize("mangle", MANGLED.values(), ids=MANGLED.keys())
async def test_a_mangled_current_token_is_refused_and_the_grant_survives(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    mangle: Callable[[str], str],
) -> None:
    """A token the family never had is no reuse: whatever happened to it on its way (the
    current generation with another secret, a generation still to come, another handle), the
    grant and its current token stay."""
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        first = await app.sign_in()
        token = (await app.refresh(first["refresh_token"])).json()["refresh_token"]
        assert mangle(token) != token

        assert_oauth_error(await app.refresh(mangle(token)), 400, "invalid_grant")

        assert (await app.refresh(token)).status_code == 200
    assert await revoked_families(pool) == 0


async def test_revoking_a_family_deny_lists_every_access_token_that_may_be_alive(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    """A family keeps no list of its access tokens: their jtis are derived from its
    generations, and revoking it deny-lists those of the last two windows of an access-token
    lifetime. Here a refresh moves the window on while the token before it is still alive."""
    ttl = timedelta(minutes=10)
    horizon = ttl + settings.clock_skew
    # The family's tokens are issued at 0, 0.5, 1 (+1 s: the window moves on), 1.33 and 2.2
    # (+1 s: it moves on again, while the token of 1.33 is still alive) horizons.
    steps = [horizon / 2, horizon / 2 + timedelta(seconds=1), horizon / 3, horizon * 0.87]
    async with app_instance(access_token_ttl=ttl, max_access_token_ttl=ttl) as instance:
        app = await app_with_refresh(instance, pool, settings)
        issued = [await app.sign_in()]
        for step in steps:
            clock.advance(step)
            response = await app.refresh(issued[-1]["refresh_token"])
            assert response.status_code == 200, response.text
            issued.append(response.json())
        claims = [
            pyjwt.decode(tokens["access_token"], options={"verify_signature": False})
            for tokens in issued
        ]
        now = clock.now().timestamp()
        alive = [i for i, c in enumerate(claims) if c["exp"] + horizon.seconds - ttl.seconds > now]
        assert alive == [3, 4], "the schedule above no longer tests the window's edge"
        for i in alive:
            assert await app.userinfo_status(issued[i]["access_token"]) == 200

        revoked = await app.http.post(
            "/revoke",
            auth=(app.client_id, app.secret),
            data={"token": issued[-1]["refresh_token"]},
        )
        assert revoked.status_code == 200

        for i in alive:
            assert await app.userinfo_status(issued[i]["access_token"]) == 401
    denied = set(await pool.fetchval("SELECT array_agg(jti) FROM revoked_access_tokens"))
    assert {claims[i]["jti"] for i in alive} <= denied
    # Bounded: nothing issued more than two horizons ago is deny-listed again.
    assert claims[0]["jti"] not in denied
    assert len(denied) <= len(issued)


async def test_a_rotation_rewrites_only_the_family_row_in_place(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    """A rotation is one UPDATE of the family's row that changes no indexed column: a HOT
    update (no new index entry), and no row inserted anywhere (migration 0010)."""
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        presented = refresh_format.parse((await app.sign_in())["refresh_token"])
    assert presented is not None
    successor = refresh_format.successor(presented, refresh_format.secret_key(settings))
    client_id = await pool.fetchval("SELECT client_id FROM refresh_families")
    async with pool.acquire() as connection, connection.transaction():
        # Counted since the connection's last report to the statistics: compare.
        before = await connection.fetchrow(TABLE_CHANGES)
        rotated = await refresh_tokens.rotate(
            connection,
            presented.handle_hash,
            presented.token_hash,
            clock.now(),
            successor.token_hash,
            client_id,
            settings.refresh_idle_ttl,
            None,
        )
        after = await connection.fetchrow(TABLE_CHANGES)
    assert rotated is not None
    assert rotated.generation == 1
    assert before is not None
    assert after is not None
    changes = {name: value - before[name] for name, value in after.items()}
    assert changes == {"updated": 1, "hot_updated": 1, "inserted": 0}


# What this transaction did to the public tables so far.
TABLE_CHANGES = """
SELECT sum(pg_stat_get_xact_tuples_updated(c.oid)) AS updated,
       sum(pg_stat_get_xact_tuples_hot_updated(c.oid)) AS hot_updated,
       sum(pg_stat_get_xact_tuples_inserted(c.oid)) AS inserted
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
"""


REUSE = "refresh.reuse_detected"


def reuses_counted() -> float:
    return REGISTRY.get_sample_value("idp_audit_events_total", {"action": REUSE}) or 0.0


def reuses_logged(caplog: pytest.LogCaptureFixture) -> int:
    return sum(getattr(record, "event", None) == REUSE for record in caplog.records)


async def reuse_rows(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = $1", REUSE)
    return count


@pytest.mark.parametrize("grace", [timedelta(seconds=30), timedelta(0)], ids=["grace", "no-grace"])
async def test_a_reuse_is_audited_in_the_grants_transaction_and_announced_once_it_commits(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    grace: timedelta,
) -> None:
    """A retry within the grace is answered again and audited as nothing: no rotation, no reuse.
    A reuse revokes the family and writes its audit row in the grant's transaction (with a grace,
    the one that also seals the answer); the event is logged and counted, and this process
    deny-lists the family's access tokens, only once that transaction has committed. A commit
    that fails leaves no row, no log line, no count, and the tokens accepted."""
    caplog.set_level(logging.INFO, logger="idp.event")
    async with app_instance(refresh_reuse_grace=grace) as instance:
        app = await app_with_refresh(instance, pool, settings)
        own = (app.client_id, app.secret)
        token = (await app.sign_in())["refresh_token"]
        audited_before = await pool.fetchval("SELECT count(*) FROM audit_log")
        rotated = await app.refresh(token)
        assert rotated.status_code == 200, rotated.text
        if grace:
            retried = await app.refresh(token)
            assert retried.json() == rotated.json()
            assert await pool.fetchval("SELECT count(*) FROM audit_log") == audited_before
            clock.advance(grace + timedelta(seconds=1))
        access_token = rotated.json()["access_token"]
        await deny_lists_trusted(instance)
        counted = reuses_counted()

        async with audited_commits_fail(pool):
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                await app.refresh(token)
        assert await reuse_rows(pool) == 0
        assert (reuses_counted(), reuses_logged(caplog)) == (counted, 0)
        assert await revoked_families(pool) == 0
        await deny_lists_trusted(instance)
        assert (await introspect(app.http, own, access_token))["active"] is True

        assert_oauth_error(await app.refresh(token), 400, "invalid_grant")
        assert await reuse_rows(pool) == 1
        assert (reuses_counted(), reuses_logged(caplog)) == (counted + 1, 1)
        assert await revoked_families(pool) == 1
        assert (await introspect(app.http, own, access_token))["active"] is False
