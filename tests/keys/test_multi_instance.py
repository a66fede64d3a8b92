"""Two app instances on one database follow each other's key changes through LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import asyncpg
import httpx
from joserfc import jws

from idp.clock import FrozenClock
from idp.db.listener import APPLICATION_NAME
from tests.conftest import InstanceFactory
from tests.factories import kids

NOTIFY_DEADLINE = 1.0


async def wait_until_unpublished(client: httpx.AsyncClient, kid: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < NOTIFY_DEADLINE:
        response = await client.get("/jwks.json")
        if kid not in kids(response.content):
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    raise AssertionError(f"{kid} still published {NOTIFY_DEADLINE}s after its revocation")


async def test_revocation_through_one_instance_leaves_the_others_jwks_within_a_second(
    app_instance: InstanceFactory,
) -> None:
    # The safety-net reload is far away: only NOTIFY can make the second instance notice.
    async with app_instance() as first, app_instance() as second:
        compromised = second.state["keyring"].snapshot.signer.kid
        assert compromised in kids((await second.client.get("/jwks.json")).content)

        await first.state["keys"].revoke(compromised, "key leaked", actor="test")

        await wait_until_unpublished(second.client, compromised)
        await wait_until_unpublished(first.client, compromised)
        for instance in (first, second):
            token = instance.state["keyring"].sign({"sub": "after-revocation"})
            kid = jws.extract_compact(token.encode()).protected["kid"]
            assert kid != compromised
            assert kid in kids((await instance.client.get("/jwks.json")).content)


async def test_rotation_through_one_instance_moves_the_others_signer(
    app_instance: InstanceFactory, clock: FrozenClock
) -> None:
    async with app_instance() as first, app_instance() as second:
        old = second.state["keyring"].snapshot.signer.kid
        clock.advance(timedelta(hours=1))
        new = (await first.state["keys"].rotate(actor="test")).kid
        deadline = time.monotonic() + NOTIFY_DEADLINE
        while second.state["keyring"].snapshot.signer.kid == old:
            assert time.monotonic() < deadline, "second instance still signs with the old key"
            await asyncio.sleep(0.01)
        assert second.state["keyring"].snapshot.signer.kid == new


async def test_changes_made_while_the_listen_connection_was_down_arrive_after_it_reconnects(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    async with app_instance() as first, app_instance() as second:
        compromised = second.state["keyring"].snapshot.signer.kid
        killed = await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            APPLICATION_NAME,
        )
        assert killed == 2  # one LISTEN connection per instance

        # Revoked while nobody listens: the NOTIFY is lost, the reconnection must catch up.
        await first.state["keys"].revoke(compromised, "key leaked", actor="test")
        await wait_until_unpublished(second.client, compromised)
        assert second.state["listener"].connected.is_set()
