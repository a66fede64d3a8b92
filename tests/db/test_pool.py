"""The pool hands connections out first come, first served (``idp.db.pool.FairPool``)."""

from __future__ import annotations

import asyncio

import pytest

from idp.db.pool import create_pool


async def test_no_task_gets_a_connection_before_one_that_asked_earlier(migrated: str) -> None:
    """Many tasks, few connections, each task asking again as soon as it gives its connection
    back (a busy server's requests). asyncpg's own pool lets a newcomer take a connection that
    was freed for a task already waiting (MagicStack/asyncpg#1247); then that task waits again,
    and a few requests wait many times longer than the rest."""
    pool = await create_pool(migrated, min_size=3, max_size=3)
    waiting: set[int] = set()
    tickets = iter(range(1_000_000))
    overtaken = 0

    async def client() -> None:
        nonlocal overtaken
        for _ in range(30):
            ticket = next(tickets)
            waiting.add(ticket)
            async with pool.acquire() as connection:
                waiting.discard(ticket)
                overtaken += any(earlier < ticket for earlier in waiting)
                await connection.fetchval("SELECT 1")

    try:
        await asyncio.gather(*(client() for _ in range(24)))
    finally:
        await pool.close()
    assert overtaken == 0


async def test_a_turn_is_given_back_when_taking_the_connection_fails(migrated: str) -> None:
    pool = await create_pool(migrated, min_size=1, max_size=1)
    await pool.close()
    with pytest.raises(Exception, match=r"closed|closing"):
        async with pool.acquire():
            pass
    assert not pool.turns.locked()


async def test_awaiting_acquire_without_a_block_is_refused(migrated: str) -> None:
    """A turn must be given back, so a connection is only lent for an ``async with`` block."""
    pool = await create_pool(migrated, min_size=1, max_size=1)
    try:
        with pytest.raises(TypeError, match="async with"):
            await pool.acquire()
    finally:
        await pool.close()
