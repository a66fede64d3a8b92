"""The in-memory client cache never keeps a row that an invalidation made stale."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from idp.db import clients
from idp.db.clients import Client
from idp.oauth.client_registry import ClientRegistry
from idp.settings import Settings
from tests.factories import make_client


async def test_a_row_read_while_an_invalidation_arrived_is_not_cached(
    pool: asyncpg.Pool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = await make_client(pool, settings)
    registry = ClientRegistry(pool)
    forget = registry.subscription().on_notify
    reading, release = asyncio.Event(), asyncio.Event()
    real_by_id = clients.by_id
    calls = 0

    async def slow_by_id(db: asyncpg.Pool, client_id: str) -> Client | None:
        nonlocal calls
        calls += 1
        row = await real_by_id(db, client_id)
        reading.set()
        await release.wait()
        return row

    monkeypatch.setattr(clients, "by_id", slow_by_id)
    lookup = asyncio.create_task(registry.find(client.client_id))
    await reading.wait()
    forget(client.client_id)  # the client was disabled while its old row was on its way
    release.set()
    assert await lookup is not None

    release.set()
    await registry.find(client.client_id)
    assert calls == 2, "the stale row must not have been cached"


async def test_an_id_with_a_nul_byte_is_no_client(pool: asyncpg.Pool) -> None:
    assert await ClientRegistry(pool).find("a\x00b") is None
