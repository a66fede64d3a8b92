"""Clients, cached in memory: the token endpoint must not query the database for them.

A client found once stays cached until a ``NOTIFY idp_clients`` names it (disabling and every
other change announce themselves) or the LISTEN connection is re-established. Unknown ids are not
cached, so random ids cannot fill memory.
"""

from __future__ import annotations

import asyncpg

from idp.db import clients
from idp.db.clients import Client
from idp.db.listener import Subscription

CHANNEL = "idp_clients"


class ClientRegistry:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._cache: dict[str, Client] = {}
        # Bumped by every invalidation: a row read while one arrived may be stale already.
        self._generation = 0

    async def find(self, client_id: str) -> Client | None:
        cached = self._cache.get(client_id)
        if cached is not None:
            return cached
        if "\x00" in client_id:  # PostgreSQL text cannot hold NUL: no such client
            return None
        generation = self._generation
        found = await clients.by_id(self._pool, client_id)
        if found is not None and generation == self._generation:
            self._cache[client_id] = found
        return found

    def subscription(self) -> Subscription:
        return Subscription(CHANNEL, self._forget, self._clear)

    def _forget(self, client_id: str) -> None:
        self._generation += 1
        self._cache.pop(client_id, None)

    def _clear(self) -> None:
        self._generation += 1
        self._cache.clear()
