"""No one waits on the pool longer than the database timeout (``idp.db.pool``): an exhausted
pool, a database that refuses connections, a statement that gets no answer all end in
``DatabaseUnavailableError`` within it, never in a hang."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import pytest

from idp.db.pool import DatabaseUnavailableError, create_pool

TIMEOUT = 0.5  # seconds: IDP_DATABASE_TIMEOUT of these pools
HANG_GUARD = 10.0  # far beyond TIMEOUT: reaching it means the pool waited without a deadline


async def test_a_pool_of_one_held_elsewhere_refuses_within_the_timeout(migrated: str) -> None:
    pool = await create_pool(migrated, min_size=1, max_size=1, statement_timeout=TIMEOUT)
    try:
        async with pool.acquire():  # the one connection, held
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailableError, match="no database connection"):
                async with asyncio.timeout(HANG_GUARD), pool.acquire():
                    pass
            took = time.monotonic() - started
        assert TIMEOUT * 0.9 <= took < TIMEOUT + 2.0
        assert not pool.turns.locked(), "the refused wait gave back nothing it did not take"
        async with pool.acquire() as connection:  # and the pool serves again once it is free
            assert await connection.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_an_explicit_timeout_bounds_the_wait_instead(migrated: str) -> None:
    pool = await create_pool(migrated, min_size=1, max_size=1, statement_timeout=HANG_GUARD)
    try:
        async with pool.acquire():
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailableError):
                async with pool.acquire(timeout=TIMEOUT):
                    pass
            assert time.monotonic() - started < TIMEOUT + 2.0
    finally:
        await pool.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port  # nothing listens once the socket is closed


async def test_a_database_that_refuses_connections_is_unavailable_not_a_bare_oserror() -> None:
    url = f"postgresql://idp@127.0.0.1:{_closed_port()}/idp"
    pool = await create_pool(url, min_size=0, max_size=1, statement_timeout=TIMEOUT)
    try:
        with pytest.raises(DatabaseUnavailableError, match="cannot connect") as raised:
            async with asyncio.timeout(HANG_GUARD), pool.acquire():
                pass
        assert isinstance(raised.value.__cause__, OSError)
        assert not pool.turns.locked()
    finally:
        with contextlib.suppress(Exception):
            await pool.close()


async def test_a_statement_without_an_answer_in_time_is_unavailable(migrated: str) -> None:
    pool = await create_pool(migrated, min_size=1, max_size=1, statement_timeout=TIMEOUT)
    try:
        with pytest.raises(DatabaseUnavailableError, match="did not answer"):
            async with asyncio.timeout(HANG_GUARD):
                await pool.fetchval("SELECT pg_sleep(5)")
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
