"""The background tasks a request starts and does not wait for (idp.background)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from idp.background import Background


async def test_background_work_that_fails_is_logged_and_forgotten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    background = Background()

    async def fails() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="idp.background"):
        background.start(fails(), "failing work")
        await background.drain()

    assert [record.getMessage() for record in caplog.records] == ["failing work failed"]
    await background.close()


async def test_background_work_still_running_at_shutdown_is_cancelled_after_the_grace() -> None:
    background = Background()
    ended = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            ended.set()

    background.start(slow(), "slow work")
    async with asyncio.timeout(5):
        await background.close(grace=0.05)

    assert ended.is_set()
