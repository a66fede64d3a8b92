"""The in-memory deny-list behind /introspect: fed by NOTIFY from any process, trusted only while
it is known complete, and the database asked otherwise."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import jwt as pyjwt
import pytest

from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.factories import make_client

pytestmark = pytest.mark.usefixtures("real_time")

DENY = "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2)"


@dataclass(frozen=True)
class Introspected:
    """A client's live access token, its jti, and a resource server that introspects it."""

    instance: Instance
    resource_server: tuple[str, str]
    token: str
    jti: str

    async def active(self) -> bool:
        answer = await self.instance.client.post(
            "/introspect", auth=self.resource_server, data={"token": self.token}
        )
        assert answer.status_code == 200, answer.text
        is_active: bool = answer.json()["active"]
        return is_active


async def introspected(instance: Instance, pool: asyncpg.Pool, settings: Settings) -> Introspected:
    machine, secret = await make_client(
        pool, settings, name="machine", audiences=("https://api.example",)
    )
    rs, rs_secret = await make_client(
        pool, settings, name="api", introspect_audiences=("https://api.example",)
    )
    issued = await instance.client.post(
        "/token", auth=(machine.client_id, secret), data={"grant_type": "client_credentials"}
    )
    token: str = issued.json()["access_token"]
    jti: str = pyjwt.decode(token, options={"verify_signature": False})["jti"]
    return Introspected(instance, (rs.client_id, rs_secret), token, jti)


async def test_a_revocation_written_elsewhere_reaches_memory_by_notify(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        deny_list = instance.state["token_context"].deny_list
        probe = await introspected(instance, pool, settings)
        deadline = time.monotonic() + 5
        while not deny_list.trusted:
            assert time.monotonic() < deadline, "the deny-list never loaded"
            await asyncio.sleep(0.01)
        assert await probe.active()

        # Another process deny-lists it (its own /revoke, or the CLI): only NOTIFY tells us.
        await pool.execute(DENY, probe.jti, datetime.now(UTC) + timedelta(hours=1))
        deadline = time.monotonic() + 1
        while await probe.active():
            assert time.monotonic() < deadline, "not inactive within 1 s of the revocation"
            await asyncio.sleep(0.01)

        # From memory: with the row gone, the answer stays (until a reload would drop it).
        await pool.execute("DELETE FROM revoked_access_tokens WHERE jti = $1", probe.jti)
        assert deny_list.trusted
        assert not await probe.active()


async def test_without_its_listen_connection_the_database_is_asked(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        deny_list = instance.state["token_context"].deny_list
        probe = await introspected(instance, pool, settings)
        await instance.state["listener"].stop()  # notifications can no longer arrive
        assert not deny_list.trusted

        await pool.execute(DENY, probe.jti, datetime.now(UTC) + timedelta(hours=1))
        assert not await probe.active()
