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

log = logging.getLogger(__name__)


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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                connection = await asyncpg.connect(self._url)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            try:
                for subscription in self._subscriptions:
                    await connection.add_listener(subscription.channel, self._dispatch)
                self.connected.set()
                for subscription in self._subscriptions:
                    subscription.on_connect()
                while not connection.is_closed():
                    await asyncio.sleep(self._check)
                    async with asyncio.timeout(self._check):
                        await connection.execute("SELECT 1")
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("LISTEN connection lost; reconnecting")
            finally:
                self.connected.clear()
                if not connection.is_closed():
                    connection.terminate()

    def _dispatch(self, connection: Connection, pid: int, channel: str, payload: object) -> None:
        for subscription in self._subscriptions:
            if subscription.channel == channel:
                subscription.on_notify(str(payload))
