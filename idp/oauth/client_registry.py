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

    async def find(self, client_id: str) -> Client | None:
        cached = self._cache.get(client_id)
        if cached is not None:
            return cached
        found = await clients.by_id(self._pool, client_id)
        if found is not None:
            self._cache[client_id] = found
        return found

    def subscription(self) -> Subscription:
        return Subscription(CHANNEL, self._forget, self._cache.clear)

    def _forget(self, client_id: str) -> None:
        self._cache.pop(client_id, None)
