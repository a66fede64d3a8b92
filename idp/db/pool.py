"""The asyncpg pool.

Pooled connections carry no session state (no session advisory locks, LISTEN or SET: the
keyring's LISTEN has its own connection and locks are transaction-level), so the pool's
per-release reset query is pure overhead and is replaced by a no-op (DESIGN.md, performance).
"""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Pool = asyncpg.Pool
# A connection of one's own, or one borrowed from the pool.
Connection = asyncpg.Connection | PoolConnectionProxy
# Anything that can run one statement.
Executor = Connection | asyncpg.Pool


async def _no_reset(connection: asyncpg.Connection) -> None:
    return None


async def create_pool(
    database_url: str, *, min_size: int = 2, max_size: int = 10, statement_timeout: float = 5.0
) -> Pool:
    """``statement_timeout`` bounds connecting and every statement (IDP_DATABASE_TIMEOUT): while the
    database is away, a request fails with 503 in that time instead of hanging. The pool
    reconnects by itself: a connection found closed is replaced when next acquired."""
    return await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        reset=_no_reset,
        timeout=statement_timeout,
        command_timeout=statement_timeout,
    )
