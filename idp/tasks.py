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


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended (its loops end only by cancellation)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
