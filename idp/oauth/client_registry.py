"""Clients, cached in memory: the token endpoint must not query the database for them.

A client found once stays cached until a ``NOTIFY idp_clients`` names it (disabling and every
other change announce themselves) or the LISTEN connection is re-established. Unknown ids are not
cached, so random ids cannot fill memory.

Beside it, the set of every enabled client's redirect-URI origins (``allows_origin``), for CORS
preflights, which name no client. It is read whole on first use and dropped on every
announcement (adding a client announces itself too), so it never outlives a change.
"""

from __future__ import annotations

import asyncio

import asyncpg

from idp.db import clients
from idp.db.clients import Client
from idp.db.listener import Subscription
from idp.oauth.origins import client_origins

CHANNEL = "idp_clients"


class ClientRegistry:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._cache: dict[str, Client] = {}
        # Bumped by every invalidation: a row read while one arrived may be stale already.
        self._generation = 0
        self._origins: frozenset[str] | None = None
        self._origins_loading = asyncio.Lock()

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

    async def allows_origin(self, origin: str) -> bool:
        """Whether ``origin`` is the origin of a redirect URI of some enabled client."""
        origins = self._origins
        if origins is None:
            origins = await self._load_origins()
        return origin.lower() in origins

    async def _load_origins(self) -> frozenset[str]:
        async with self._origins_loading:  # one read for a burst of preflights
            if self._origins is not None:
                return self._origins
            generation = self._generation
            every = await clients.all_clients(self._pool)
            loaded = frozenset(
                origin for client in every if not client.disabled
                for origin in client_origins(client)
            )  # fmt: skip
            if generation == self._generation:
                self._origins = loaded
            return loaded

    def subscription(self) -> Subscription:
        return Subscription(CHANNEL, self._forget, self._clear)

    def forget(self, client_id: str) -> None:
        """Drop ``client_id`` now, in this process, ahead of the NOTIFY its change sent."""
        self._forget(client_id)

    def _forget(self, client_id: str) -> None:
        self._generation += 1
        self._cache.pop(client_id, None)
        self._origins = None

    def _clear(self) -> None:
        self._generation += 1
        self._cache.clear()
        self._origins = None
