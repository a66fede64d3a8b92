"""The registry's set of allowed CORS origins: every enabled client's redirect-URI origins, and
never a set that an invalidation made stale."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from idp.db import clients
from idp.db.clients import Client
from idp.db.pool import Executor
from idp.oauth.client_registry import ClientRegistry
from idp.settings import Settings
from tests.factories import make_client


async def test_origins_are_those_of_enabled_clients_redirect_uris(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    await make_client(
        pool, settings, grant_types=("authorization_code",),
        redirect_uris=("https://App.Example/cb", "http://127.0.0.1:9000/cb", "com.example:/cb"),
    )  # fmt: skip
    disabled, _ = await make_client(
        pool, settings, grant_types=("authorization_code",),
        redirect_uris=("https://gone.example/cb",),
    )  # fmt: skip
    await clients.disable(pool, disabled.client_id)
    registry = ClientRegistry(pool)
    assert await registry.allows_origin("https://app.example")
    assert await registry.allows_origin("https://APP.example")
    assert await registry.allows_origin("http://127.0.0.1:9000")
    for refused in ("https://gone.example", "null", "com.example:", "https://app.example:443x"):
        assert not await registry.allows_origin(refused), refused


async def test_a_set_read_while_an_invalidation_arrived_is_not_kept(
    pool: asyncpg.Pool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = await make_client(
        pool, settings, grant_types=("authorization_code",),
        redirect_uris=("https://app.example/cb",),
    )  # fmt: skip
    registry = ClientRegistry(pool)
    forget = registry.subscription().on_notify
    reading, release = asyncio.Event(), asyncio.Event()
    real_all = clients.all_clients

    async def slow_all(db: Executor) -> list[Client]:
        rows = await real_all(db)
        reading.set()
        await release.wait()
        return rows

    monkeypatch.setattr(clients, "all_clients", slow_all)
    lookup = asyncio.create_task(registry.allows_origin("https://app.example"))
    await reading.wait()
    forget(client.client_id)  # a change was announced while the old set was on its way
    release.set()
    assert await lookup
    monkeypatch.setattr(clients, "all_clients", real_all)
    await pool.execute("UPDATE clients SET disabled = true")
    assert not await registry.allows_origin("https://app.example"), "the stale set was kept"
