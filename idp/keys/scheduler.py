"""Runs the key lifecycle's tick every IDP_KEY_CHECK_INTERVAL in every process.

The tick itself serializes on a Postgres advisory lock (``KeyManager``), so a rotation happens
once per cluster however many processes tick.
"""

from __future__ import annotations

import logging

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from idp.keys.manager import KeyManager
from idp.settings import Settings

log = logging.getLogger(__name__)


class KeyScheduler:
    def __init__(self, manager: KeyManager, settings: Settings) -> None:
        self._manager = manager
        self._interval = settings.key_check_interval
        self._scheduler = AsyncIOScheduler()

    def start(self) -> None:
        """Start ticking; must be called from within the running event loop."""
        self._scheduler.add_job(
            self.tick,
            "interval",
            seconds=self._interval.total_seconds(),
            id="keys.tick",
            coalesce=True,  # after an outage, catch up missed ticks once
            max_instances=1,
            misfire_grace_time=int(self._interval.total_seconds()),
        )
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    async def tick(self) -> None:
        try:
            applied = await self._manager.tick()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning("key lifecycle tick failed; will retry at the next tick", exc_info=True)
            return
        for item in applied:
            log.info("key %s: %s", item.kid, type(item.transition).__name__.lower())
