"""Users, cached in memory for /userinfo, /introspect and refreshes, which would otherwise read
one row for every request.

Any change to a user announces itself (``NOTIFY idp_users``, by a trigger: migration 0009), and
drops the cached row. The cache is used only while the LISTEN connection is up, and emptied when
it comes back (changes made meanwhile were not announced); otherwise the database is read. At
most ``MAX_ENTRIES`` users are kept, the oldest dropped first.
"""

from __future__ import annotations

import uuid

import asyncpg

from idp.db import users
from idp.db.listener import Listener, Subscription
from idp.db.pool import Executor
from idp.db.users import User

CHANNEL = "idp_users"
MAX_ENTRIES = 10_000


class UserCache:
    def __init__(self, pool: asyncpg.Pool, listener: Listener) -> None:
        self._pool = pool
        self._listener = listener
        self._cache: dict[uuid.UUID, User] = {}
        # Bumped by every invalidation: a row read while one arrived may be stale already.
        self._generation = 0

    async def find(self, user_id: uuid.UUID, db: Executor | None = None) -> User | None:
        """``db``: where to read a user not cached (the pool's by default)."""
        listening = self._listener.connected.is_set()
        if listening and user_id in self._cache:
            return self._cache[user_id]
        generation = self._generation
        found = await users.by_id(self._pool if db is None else db, user_id)
        if found is not None and listening and generation == self._generation:
            if len(self._cache) >= MAX_ENTRIES:
                del self._cache[next(iter(self._cache))]  # the oldest entry
            self._cache[user_id] = found
        return found

    def subscription(self) -> Subscription:
        return Subscription(CHANNEL, self._forget, self._clear)

    def _forget(self, payload: str) -> None:
        self._generation += 1
        try:
            self._cache.pop(uuid.UUID(payload), None)
        except ValueError:
            self._cache.clear()

    def _clear(self) -> None:
        self._generation += 1
        self._cache.clear()
