"""idp_rp.bff.refresh.Refresher: one refresh per refresh token, shared by concurrent callers
and by stragglers for ``result_ttl``; an error is not kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from idp_rp.bff.refresh import Refresher
from idp_rp.bff.sessions import Session


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


def renewed(n: int) -> Session:
    return Session("sid", f"access-{n}", 0.0, f"refresh-{n}", "h.e.s", "xsrf")


async def test_concurrent_callers_share_one_refresh_and_stragglers_its_result() -> None:
    clock, calls = Clock(), []
    refresher = Refresher(clock, timedelta(seconds=30))
    gate = asyncio.Event()

    async def refresh() -> Session:
        calls.append(1)
        await gate.wait()
        return renewed(len(calls))

    waiting = [asyncio.create_task(refresher.run("old", refresh)) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiting)
    assert len(calls) == 1
    assert results == [renewed(1)] * 20
    clock.at += timedelta(seconds=29)
    assert await refresher.run("old", refresh) == renewed(1)
    assert len(calls) == 1
    clock.at += timedelta(seconds=1)
    assert await refresher.run("old", refresh) == renewed(2)


async def test_a_failed_refresh_is_not_kept_for_the_next_caller() -> None:
    refresher = Refresher(Clock(), timedelta(seconds=30))

    async def failing() -> Session:
        raise ConnectionError("idp down")

    with pytest.raises(ConnectionError):
        await refresher.run("old", failing)

    async def working() -> Session:
        return renewed(7)

    assert (await refresher.run("old", working)) == renewed(7)


async def test_a_refused_refresh_is_shared_as_none() -> None:
    refresher, calls = Refresher(Clock(), timedelta(seconds=30)), []

    async def refused() -> Session | None:
        calls.append(1)
        return None

    assert await refresher.run("old", refused) is None
    assert await refresher.run("old", refused) is None
    assert len(calls) == 1
