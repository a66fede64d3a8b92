"""The asyncpg pool.

Pooled connections carry no session state (no session advisory locks, LISTEN or SET: the
keyring's LISTEN has its own connection and locks are transaction-level), so the pool's
per-release reset query would be pure overhead and is a no-op.

Connections are handed out first come, first served (``FairPool``), and no one waits for one
longer than the database timeout: then ``DatabaseUnavailableError``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy

Pool = asyncpg.Pool
# A connection of one's own, or one borrowed from the pool.
Connection = asyncpg.Connection | PoolConnectionProxy
# Anything that can run one statement.
Executor = Connection | asyncpg.Pool


class DatabaseUnavailableError(ConnectionError):
    """No connection to the database within the database timeout: every one is busy, or
    connecting failed, or a statement got no answer in time. Worth a retry in a moment (a
    ``ConnectionError``, so callers that outlast outages by catching ``OSError`` still do)."""


# What connecting can raise: the socket's errors (refused, no such socket, timeout), the
# server's refusals (starting up, too many connections, bad credentials), a closed pool.
_CONNECTING_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def _no_reset(connection: asyncpg.Connection) -> None:
    return None


class FairPool(asyncpg.Pool):
    """asyncpg's pool, handing connections out in the order they were asked for, within
    ``acquire_timeout``.

    asyncpg gives a released connection to whichever task asks next, so a task woken for it may
    find it taken and queue again at the back (MagicStack/asyncpg#1247). A FIFO semaphore of
    ``max_size`` turns in front of the pool (asyncio.Semaphore is first come, first served)
    means a task asks the pool only when a connection is free for it.
    """

    def __init__(self, *args: Any, max_size: int, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, max_size=max_size, **kwargs)
        self.turns = asyncio.Semaphore(max_size)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        """``timeout`` bounds the wait for a free connection (default ``acquire_timeout``);
        connecting is bounded by the pool's connect timeout."""
        return _TurnThenAcquire(self, timeout or self.acquire_timeout)


class _TurnThenAcquire(PoolAcquireContext):
    """``async with pool.acquire() as connection``: wait for a turn, then take a connection,
    and give both back on leaving. (``await pool.acquire()`` is not supported: idp only
    borrows connections for a block, and a turn must not outlive it.)"""

    __slots__ = ("wait",)
    pool: FairPool

    def __init__(self, pool: FairPool, wait: float) -> None:
        super().__init__(pool, None)  # asyncpg's own timeout would cost a task per acquire
        self.wait = wait

    async def __aenter__(self) -> PoolConnectionProxy:
        turns = self.pool.turns
        if turns.locked():  # a deadline only for those who must wait
            try:
                async with asyncio.timeout(self.wait):
                    await turns.acquire()
            except TimeoutError:
                raise DatabaseUnavailableError(
                    f"no database connection was free within {self.wait:g}s"
                ) from None
        else:
            await turns.acquire()  # returns at once
        try:
            return await super().__aenter__()
        except _CONNECTING_ERRORS as error:
            turns.release()
            raise DatabaseUnavailableError(f"cannot connect to the database: {error}") from error
        except BaseException:
            turns.release()
            raise

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            self.pool.turns.release()
        if isinstance(exc[1], TimeoutError):  # a statement outlived the command timeout
            raise DatabaseUnavailableError("the database did not answer in time") from exc[1]

    def __await__(self) -> Any:
        raise TypeError("use `async with pool.acquire() as connection`")


async def create_pool(
    database_url: str, *, min_size: int = 2, max_size: int = 10, statement_timeout: float = 5.0
) -> FairPool:
    """``statement_timeout`` (IDP_DATABASE_TIMEOUT) bounds waiting for a connection, connecting
    and every statement: while the database is away or overloaded, a request fails with 503 in
    that time instead of hanging. A connection found closed is replaced when next acquired."""
    pool = FairPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        acquire_timeout=statement_timeout,
        max_queries=50000,  # asyncpg.create_pool's defaults
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        reset=_no_reset,
        timeout=statement_timeout,
        command_timeout=statement_timeout,
    )
    return await pool
