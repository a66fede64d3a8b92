"""Work a request starts and does not wait for: the forgot-password form answers at once and
looks the address up afterwards, so its answer cannot take longer when an account exists.

The lifespan owns one ``Background`` per process: it keeps a reference to every task (asyncio
keeps only weak ones, and a task nobody holds may be collected mid-flight), logs what fails
(nobody awaits the task to see it), and at shutdown lets the tasks still running finish for a
moment, then cancels them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``work`` without waiting for it; ``what`` names it in the log if it fails."""
        task = asyncio.create_task(work, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s failed", task.get_name(), exc_info=error)

    async def drain(self) -> None:
        """Wait until every task started so far (and any they start) has ended."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self, grace: float = 5.0) -> None:
        """At shutdown: the running tasks get ``grace`` seconds to end; then they are cancelled."""
        try:
            async with asyncio.timeout(grace):
                await self.drain()
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
