"""Runs the key lifecycle's tick every IDP_KEY_CHECK_INTERVAL in every process.

The tick itself serializes on a Postgres advisory lock (``KeyManager``), so a rotation happens
once per cluster however many processes tick.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from idp.keys.manager import KeyManager
from idp.settings import Settings

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = timedelta(seconds=2)


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
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            # The database is away: try again soon rather than a whole interval later. One
            # retry is pending at a time, so an outage never piles ticks up.
            retry = min(RETRY_AFTER_FAILURE, self._interval)
            log.warning(
                "key lifecycle tick failed (%s); retrying in %ss", error, retry.total_seconds()
            )
            self._scheduler.add_job(
                self.tick,
                "date",
                run_date=datetime.now(UTC) + retry,
                id="keys.retry",
                replace_existing=True,
            )
            return
        for item in applied:
            log.info("key %s: %s", item.kid, type(item.transition).__name__.lower())
