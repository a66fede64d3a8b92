"""One dedicated LISTEN connection per process, shared by every in-memory cache.

Pooled connections must carry no session state, so LISTEN lives on its own connection. It
reconnects by itself; since notifications sent while it was away are lost, every subscriber's
``on_connect`` runs after each (re)connection so that caches reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from idp.db.pool import Connection
from idp.tasks import cancel

log = logging.getLogger(__name__)

APPLICATION_NAME = "idp-listener"  # pg_stat_activity shows which connection listens


@dataclass(frozen=True)
class Subscription:
    channel: str
    on_notify: Callable[[str], None]  # the payload
    on_connect: Callable[[], None]


class Listener:
    def __init__(self, database_url: str, *, check_interval: float = 5.0) -> None:
        self._url = database_url
        self._check = check_interval
        self._subscriptions: list[Subscription] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def subscribe(self, subscription: Subscription) -> None:
        """Subscribe before ``start``."""
        self._subscriptions.append(subscription)

    async def start(self, *, wait: float = 5.0) -> None:
        """Start listening; wait (bounded) for the first connection, so no change is missed."""
        self._task = asyncio.create_task(self._run(), name="listener")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self.connected.wait()

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            # A connection that worked for a while makes its failure a new incident.
            backoff = 0.1 if await self._listen_once() else min(backoff * 2, 5.0)
            await asyncio.sleep(backoff)

    async def _listen_once(self) -> bool:
        """Connect, listen until the connection fails; True if it passed one health probe."""
        healthy = False
        try:
            connection = await asyncpg.connect(
                self._url, server_settings={"application_name": APPLICATION_NAME}
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        try:
            for subscription in self._subscriptions:
                await connection.add_listener(subscription.channel, self._dispatch)
            self.connected.set()
            for subscription in self._subscriptions:
                subscription.on_connect()
            while not connection.is_closed():
                # A closed socket ends the wait at once; a silent one is found by the probe.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._check):
                        await lost.wait()
                async with asyncio.timeout(self._check):
                    await connection.execute("SELECT 1")
                healthy = True
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning("LISTEN connection lost; reconnecting")
        finally:
            self.connected.clear()
            if not connection.is_closed():
                connection.terminate()
        return healthy

    def _dispatch(self, connection: Connection, pid: int, channel: str, payload: object) -> None:
        for subscription in self._subscriptions:
            if subscription.channel == channel:
                subscription.on_notify(str(payload))
