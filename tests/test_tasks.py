"""Background tasks end when the process stops (idp.tasks)."""

from __future__ import annotations

import asyncio

import pytest

from idp.tasks import cancel


async def test_cancel_ends_a_loop_that_lost_the_first_cancellation() -> None:
    """On Python 3.11 a cancel that arrives as an asyncio.wait_for inside the loop completes is
    dropped (CPython gh-86296) and the loop goes on: the loop below drops the first cancel the
    same way. ``cancel`` must still end it, where a single cancel waited for ever."""
    dropped = 0

    async def loop() -> None:
        nonlocal dropped
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if dropped:
                    raise
                dropped += 1  # as wait_for does when the result and the cancel come together

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)  # the loop is waiting
    async with asyncio.timeout(5) as budget:
        await cancel(task)
    assert not budget.expired()  # ended by cancel itself, not by the test's own deadline
    assert task.cancelled()
    assert dropped == 1


async def test_cancel_raises_what_the_task_failed_with() -> None:
    async def failing() -> None:
        raise RuntimeError("a bug in a loop")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="a bug in a loop"):
        await cancel(task)
