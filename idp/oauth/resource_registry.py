"""The resources (RFC 8707) that clients registered by a program may ask tokens for:
``IDP_RESOURCES`` plus the ``resources`` table (`idp resources add`), kept in memory.

Read whole on first use and dropped on every ``NOTIFY idp_resources`` (adding or removing one
announces itself) or reconnection, so it never outlives a change. Operator clients never read
it: their audiences are their own (``idp.oauth.access_token.resolve_audience``).
"""

from __future__ import annotations

import asyncio

import asyncpg

from idp.db import registrations
from idp.db.listener import Subscription


class ResourceRegistry:
    def __init__(self, pool: asyncpg.Pool, configured: tuple[str, ...]) -> None:
        self._pool = pool
        self._configured = frozenset(configured)
        self._loaded: frozenset[str] | None = None
        self._generation = 0  # bumped by every announcement: a read racing one is not kept
        self._loading = asyncio.Lock()

    async def allowed(self) -> frozenset[str]:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        async with self._loading:  # one read for a burst of requests
            if self._loaded is not None:
                return self._loaded
            generation = self._generation
            stored = await registrations.all_resources(self._pool)
            loaded = self._configured | {resource.url for resource in stored}
            if generation == self._generation:
                self._loaded = loaded
            return loaded

    def subscription(self) -> Subscription:
        return Subscription(registrations.RESOURCES_CHANNEL, self._drop_payload, self._drop)

    def _drop_payload(self, payload: str) -> None:
        self._drop()

    def _drop(self) -> None:
        self._generation += 1
        self._loaded = None
