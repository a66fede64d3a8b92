"""Deny-listed access tokens, held in memory so that introspection needs no query for them.

Every insert into ``revoked_access_tokens`` is announced (``NOTIFY idp_revocations``, by a
trigger: migration 0007) and arrives through the process's LISTEN connection; this process's own
revocations are added as soon as their transaction commits (``AuditTrail.after_commit``), not
before: PostgreSQL sends the NOTIFY only on commit, and this process must not know more than
the database. The memory is trusted only while it is known complete:
loaded after the LISTEN connection's latest (re)connection and while that connection is up.
Otherwise ``revoked`` asks the database. A full reload every IDP_KEY_CHECK_INTERVAL bounds what
a silently dead connection could hide, and drops the entries no verifier accepts any more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime

import asyncpg

from idp.clock import Clock
from idp.db import token_status
from idp.db.listener import Listener, Subscription
from idp.tasks import cancel, woken

CHANNEL = "idp_revocations"


class DenyList:
    def __init__(self, pool: asyncpg.Pool, clock: Clock, listener: Listener) -> None:
        self._pool = pool
        self._clock = clock
        self._listener = listener
        self._jtis: dict[str, datetime] = {}  # jti -> until when it is deny-listed
        self._complete = False  # loaded since the latest (re)connection of the listener
        self._connection_count = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def trusted(self) -> bool:
        return self._complete and self._listener.connected.is_set()

    async def revoked(self, jti: str) -> bool:
        if self.trusted:
            return jti in self._jtis
        return await token_status.is_denied(self._pool, jti)

    def add(self, entries: Iterable[tuple[str, datetime]]) -> None:
        """Entries a transaction of this process has just committed (their NOTIFY will say the
        same, later). Never before the commit: a rollback would leave this process refusing
        tokens that the database and every other process accept."""
        self._jtis.update(entries)

    def subscription(self) -> Subscription:
        return Subscription(CHANNEL, self._announced, self._reconnected)

    def _announced(self, payload: str) -> None:
        jti, _, epoch = payload.partition(" ")
        try:
            until = datetime.fromtimestamp(int(epoch), UTC)
        except ValueError:
            until = datetime.max.replace(tzinfo=UTC)  # kept until the next reload
        self._jtis[jti] = until

    def _reconnected(self) -> None:
        """Notifications sent while the connection was away are lost: reload."""
        self._connection_count += 1
        self._complete = False
        self._wake.set()

    async def load(self) -> None:
        connection_count = self._connection_count
        now = self._clock.now()
        loaded = await token_status.denied_since(self._pool, now)
        # Keep what arrived meanwhile; drop what has expired.
        merged = {jti: until for jti, until in self._jtis.items() if until > now}
        merged.update(loaded)
        self._jtis = merged
        # Complete only if the listener did not reconnect during the load (it may have missed
        # notifications before the load's snapshot).
        self._complete = connection_count == self._connection_count

    async def start(self, reload_every: float) -> None:
        self._task = asyncio.create_task(self._reload_loop(reload_every), name="deny-list")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _reload_loop(self, every: float) -> None:
        while True:
            await woken(self._wake, every)
            try:
                await self.load()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._complete = False  # the database answers the lookups, or 503s them
                await asyncio.sleep(1.0)
