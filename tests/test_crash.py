"""Crash tests: an idp process SIGKILLed in the middle of a key rotation and of a refresh leaves
the database whole (exactly one active key; a refresh family rotated with its sealed answer, or
not at all), and a restarted idp carries on.

No hook in idp: the test holds a lock that the process's transaction needs (the audit log of a
key change; the refresh family's row) and waits until PostgreSQL shows the process's backend
waiting for it. A key rotation has rows written by then; a refresh with a grace window is caught
between its two writes by stopping the process (SIGSTOP) before releasing the lock. The test
SIGKILLs the process, then releases the lock and waits until the orphaned backend is gone.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from idp.clock import FrozenClock
from idp.hashing import digest
from idp.keys.manager import KeyManager
from idp.settings import Settings
from tests.factories import assert_oauth_error, kids, make_client, make_user, run_command, verify
from tests.helpers import IDP, free_port, key_states, kid_of
from tests.oauth.flow import Authorization, authorize_code, exchange_code
from tests.processes import (
    ROOT,
    Processes,
    Spawned,
    holding_lock,
    idp_environ,
    row_locked,
    wait_for_idle_in_transaction,
    wait_for_lock_wait,
    wait_until_backend_gone,
)

REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"

ACTIVE_KEYS = "SELECT count(*) FROM signing_keys WHERE state = 'active'"
FAMILY_OF = "SELECT id FROM refresh_families WHERE token_hash = $1"
FAMILY = """
SELECT token_hash, previous_hash, generation, successor_response IS NOT NULL AS sealed,
    revoked_at
FROM refresh_families WHERE id = $1
"""
FAMILY_ROW = "SELECT id FROM refresh_families WHERE id = $1"


async def test_sigkill_in_the_middle_of_a_key_rotation_leaves_exactly_one_active_key(
    processes: Processes, pool: asyncpg.Pool, settings: Settings, migrated: str, kek: bytes
) -> None:
    # Keys made an hour ago: a manual rotation may promote the pending one at once.
    an_hour_ago = FrozenClock(datetime.now(UTC) - timedelta(hours=1))
    await KeyManager(pool, settings, an_hour_ago).tick(actor="test")
    before = await key_states(pool)
    [active] = [kid for kid, state in before.items() if state == "active"]
    [pending] = [kid for kid, state in before.items() if state == "pending"]
    port = free_port()
    env = idp_environ(migrated, kek, f"http://127.0.0.1:{port}")

    # The rotation writes the audit log after each key change: it waits there, mid-transaction.
    async with holding_lock(migrated, "LOCK TABLE audit_log IN SHARE MODE") as blocker:
        rotation = await processes.spawn(["keys", "rotate"], env)
        waiting = await wait_for_lock_wait(pool, rotation, blocker)
        assert waiting.query.lstrip().startswith("INSERT INTO audit_log"), waiting.query
        assert waiting.has_written, "its transaction has written nothing: not mid-rotation"
        # Caught half-rotated: the active key is demoted (its row is locked by the update) and
        # the pending key not promoted yet; committed, this would leave no key signing.
        assert await row_locked(pool, "SELECT kid FROM signing_keys WHERE kid = $1", active)
        assert not await row_locked(pool, "SELECT kid FROM signing_keys WHERE kid = $1", pending)
        await processes.kill(rotation)
    await wait_until_backend_gone(pool, waiting.pid)

    assert await key_states(pool) == before, "a change of the killed rotation survived"
    assert await pool.fetchval(ACTIVE_KEYS) == 1
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE actor LIKE 'cli:%'") == 0

    # A restarted idp publishes both keys and signs with the active one.
    served = await processes.serve(env, port)
    client, secret = await make_client(pool, settings)
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        jwks = (await http.get("/jwks.json")).content
        assert kids(jwks) == {active, pending}
        response = await http.post(
            "/token", auth=(client.client_id, secret), data={"grant_type": "client_credentials"}
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        assert kid_of(token) == active
        assert verify(token, jwks, ["RS256"])["client_id"] == client.client_id

    # And the rotation, run again, completes: nothing of the killed one is left in the way.
    rotated = await run_command([*IDP, "keys", "rotate"], env, cwd=ROOT)
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == pending
    after = await key_states(pool)
    assert after[active] == "retiring"
    assert after[pending] == "active"
    assert await pool.fetchval(ACTIVE_KEYS) == 1


async def assert_family_at(
    pool: asyncpg.Pool, family_id: object, current: str, previous: str, generation: int
) -> None:
    """The family is live, at ``generation``, ``current`` its token, replacing ``previous``."""
    family = await pool.fetchrow(FAMILY, family_id)
    assert family is not None, "no such family"
    assert family["revoked_at"] is None
    assert family["generation"] == generation
    assert family["token_hash"] == digest(current), "another token is the current one"
    assert family["previous_hash"] == digest(previous), "it replaced another token"


@dataclass
class Signed:
    """A confidential client's refresh token, the second of its family, presented mid-crash."""

    client_id: str
    secret: str
    user_id: str
    first: str
    presented: str
    family_id: object

    async def refresh(self, http: httpx.AsyncClient) -> httpx.Response:
        return await http.post(
            "/token",
            auth=(self.client_id, self.secret),
            data={"grant_type": "refresh_token", "refresh_token": self.presented},
        )


async def sign_in_and_refresh(
    http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> Signed:
    """A code flow, then one refresh: the family already holds a consumed token."""
    client, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email"),
        first_party=True,
    )
    user = await make_user(pool, password=PASSWORD)
    auth = Authorization(client.client_id, REDIRECT, scope="openid email")
    code = await authorize_code(http, auth, user.email, PASSWORD)
    exchanged = await exchange_code(http, client.client_id, secret, code, auth)
    assert exchanged.status_code == 200, exchanged.text
    first = exchanged.json()["refresh_token"]
    signed = Signed(client.client_id, secret, str(user.id), first, first, None)
    refreshed = await signed.refresh(http)
    assert refreshed.status_code == 200, refreshed.text
    signed.presented = refreshed.json()["refresh_token"]
    signed.family_id = await pool.fetchval(FAMILY_OF, digest(signed.presented))
    await assert_family_at(pool, signed.family_id, signed.presented, first, generation=1)
    return signed


async def crash_mid_refresh(
    processes: Processes,
    pool: asyncpg.Pool,
    migrated: str,
    served: Spawned,
    http: httpx.AsyncClient,
    signed: Signed,
    *,
    between_writes: bool,
) -> None:
    """POST the refresh; once its backend waits for the family's row (the test holds it FOR
    UPDATE), SIGKILL idp, release the row and wait until the backend is gone. ``between_writes``:
    first stop idp (SIGSTOP) and release the row, so that its transaction rotates the family and
    then waits, idle, for the sealed answer that never comes."""
    async with holding_lock(migrated, f"{FAMILY_ROW} FOR UPDATE", signed.family_id) as blocker:
        attempt = asyncio.create_task(signed.refresh(http))
        waiting = await wait_for_lock_wait(pool, served, blocker)
        assert "UPDATE refresh_families" in waiting.query, waiting.query
        if between_writes:
            served.process.send_signal(signal.SIGSTOP)
        else:
            await processes.kill(served)  # before the row is free: no answer can leave
    if between_writes:
        assert await wait_for_idle_in_transaction(pool, waiting.pid), "nothing written"
        assert await row_locked(pool, FAMILY_ROW, signed.family_id), "not rotated yet"
        await processes.kill(served)
    with pytest.raises(httpx.TransportError):
        await attempt  # the client never gets an answer
    await wait_until_backend_gone(pool, waiting.pid)


async def test_sigkill_mid_refresh_in_a_transaction_rolls_back_and_the_retry_refreshes(
    processes: Processes, pool: asyncpg.Pool, settings: Settings, migrated: str, kek: bytes
) -> None:
    # With a grace window the rotation and the sealed answer commit together, in a transaction.
    port = free_port()
    env = idp_environ(migrated, kek, f"http://127.0.0.1:{port}", IDP_REFRESH_REUSE_GRACE="60s")
    served = await processes.serve(env, port)
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        signed = await sign_in_and_refresh(http, pool, settings)
        await crash_mid_refresh(
            processes, pool, migrated, served, http, signed, between_writes=True
        )

    # Rolled back whole: the presented token is still the current one, its answer unsealed.
    await assert_family_at(pool, signed.family_id, signed.presented, signed.first, generation=1)

    # The client retries against the restarted idp, and the token refreshes.
    restarted = await processes.serve(env, port)
    async with httpx.AsyncClient(base_url=restarted.url, timeout=10) as http:
        retried = await signed.refresh(http)
        assert retried.status_code == 200, retried.text
        jwks = (await http.get("/jwks.json")).content
    assert verify(retried.json()["access_token"], jwks, ["RS256"])["sub"] == signed.user_id
    renewed = retried.json()["refresh_token"]
    await assert_family_at(pool, signed.family_id, renewed, signed.presented, generation=2)
    family = await pool.fetchrow(FAMILY, signed.family_id)
    assert family is not None
    assert family["sealed"], "the answer for a retry within the grace is kept"


async def test_sigkill_mid_refresh_in_one_statement_completes_it_whole(
    processes: Processes, pool: asyncpg.Pool, settings: Settings, migrated: str, kek: bytes
) -> None:
    """Without a grace window the rotation is one statement, sent with its Sync: PostgreSQL
    finishes it and commits after the process died. The family is whole, but the client never
    got the successor: its retry is a reuse, which revokes the family (RFC 9700 §4.14.2) as it
    would after any answer lost on the way. IDP_REFRESH_REUSE_GRACE is the remedy."""
    port = free_port()
    env = idp_environ(migrated, kek, f"http://127.0.0.1:{port}", IDP_REFRESH_REUSE_GRACE="0")
    served = await processes.serve(env, port)
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        signed = await sign_in_and_refresh(http, pool, settings)
        await crash_mid_refresh(
            processes, pool, migrated, served, http, signed, between_writes=False
        )

    # Rotated whole: generation 2 replaced the presented token.
    family = await pool.fetchrow(FAMILY, signed.family_id)
    assert family is not None
    assert family["generation"] == 2
    assert family["previous_hash"] == digest(signed.presented)
    assert family["token_hash"] not in (None, digest(signed.presented))

    restarted = await processes.serve(env, port)
    async with httpx.AsyncClient(base_url=restarted.url, timeout=10) as http:
        retried = await signed.refresh(http)
    assert_oauth_error(retried, 400, "invalid_grant")
    family = await pool.fetchrow(FAMILY, signed.family_id)
    assert family is not None
    assert family["revoked_at"] is not None
