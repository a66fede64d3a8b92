"""The background tasks a process runs (the LISTEN loop, reload loops, the log flusher)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def woken(wake: asyncio.Event, every: float) -> None:
    """Return once ``wake`` is set, or after ``every`` seconds at most; clear it either way
    (a reload loop's wait: on NOTIFY, or as a safety net)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(every):
            await wake.wait()
    wake.clear()


# How long ``cancel`` waits for a cancelled task to end before cancelling it again.
RECANCEL_EVERY = 0.1


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended (its loops end only by cancellation).

    One cancellation is not always enough on Python 3.11: ``asyncio.wait_for``, which asyncpg and
    aiosmtplib use for their timeouts, returns the result of an operation that completes in the
    same turn of the event loop as the cancel and drops the cancel (CPython gh-86296, fixed in
    3.12 by building wait_for on asyncio.timeout), and the loop goes on as if never asked to
    stop. A shutdown then waited for ever (seen in the tests: the mail sender, once in a few
    hundred app stops). So the task is cancelled again every ``RECANCEL_EVERY`` until it ends."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_EVERY)
    with contextlib.suppress(asyncio.CancelledError):
        await task
