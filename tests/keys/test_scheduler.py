"""The scheduler inside a running app rotates keys on schedule, without anyone asking."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta

import asyncpg

from idp.clock import FrozenClock, SystemClock
from idp.keys.manager import Applied, KeyManager
from idp.keys.scheduler import RETRY_AFTER_FAILURE, KeyScheduler
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import kids


async def test_running_app_rotates_when_the_active_key_is_due(
    app_instance: InstanceFactory, clock: FrozenClock
) -> None:
    async with app_instance(run_scheduler=True, key_check_interval=timedelta(seconds=1)) as app:
        keyring = app.state["keyring"]
        old = keyring.snapshot.signer.kid
        published_before = kids(keyring.snapshot.jwks_body)
        clock.advance(app.state["settings"].key_rotation_interval)

        deadline = time.monotonic() + 5
        while keyring.snapshot.signer.kid == old:
            assert time.monotonic() < deadline, "no rotation within 5 ticks"
            await asyncio.sleep(0.05)

        assert keyring.snapshot.signer.kid in published_before
        assert old in kids(keyring.snapshot.jwks_body), "the old key stays published"


class UnreachableAtFirst(KeyManager):
    """The real manager, behind a database that refuses the first ``failures`` connections."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, failures: int) -> None:
        super().__init__(pool, settings, SystemClock())
        self.failures = failures
        self.calls = 0
        self.succeeded = asyncio.Event()

    async def tick(self, actor: str = "scheduler") -> list[Applied]:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionRefusedError(111, "Connect call failed")
        applied = await super().tick(actor)
        self.succeeded.set()
        return applied


async def test_a_tick_that_finds_the_database_away_is_retried_soon_and_only_once(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    hourly = replace(settings, key_check_interval=timedelta(hours=1))
    manager = UnreachableAtFirst(pool, hourly, failures=2)
    scheduler = KeyScheduler(manager, hourly)
    scheduler.start()
    try:
        await scheduler.tick()  # the hourly tick, during the outage
        await scheduler.tick()  # another one before the retry: still one retry pending
        retries = [job for job in scheduler._scheduler.get_jobs() if job.id == "keys.retry"]
        assert len(retries) == 1
        started = time.monotonic()
        async with asyncio.timeout(RETRY_AFTER_FAILURE.total_seconds() + 3):
            await manager.succeeded.wait()
        assert time.monotonic() - started < RETRY_AFTER_FAILURE.total_seconds() + 3
        assert manager.calls == 3, "two failed ticks, then exactly one retry"
    finally:
        scheduler.shutdown()
