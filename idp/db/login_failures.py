"""SQL of ``login_failures``: counters behind the login page's growing delays and locks."""

from __future__ import annotations

from datetime import datetime, timedelta

from idp.db.pool import Executor

SELECT_LOCKED_UNTIL = """
SELECT max(locked_until) FROM login_failures WHERE key = ANY($1::text[]) AND locked_until > $2
"""
RECORD = """
INSERT INTO login_failures (key, failures, last_failure_at) VALUES ($1, 1, $2)
ON CONFLICT (key) DO UPDATE
SET failures = CASE WHEN login_failures.last_failure_at < $2 - $3::interval THEN 1
                    ELSE login_failures.failures + 1 END,
    last_failure_at = $2
RETURNING failures
"""
LOCK = "UPDATE login_failures SET locked_until = $2 WHERE key = $1"
CLEAR = "DELETE FROM login_failures WHERE key = $1"


async def locked_until(db: Executor, keys: list[str], now: datetime) -> datetime | None:
    value: datetime | None = await db.fetchval(SELECT_LOCKED_UNTIL, keys, now)
    return value


async def record_failure(db: Executor, key: str, now: datetime, window: timedelta) -> int:
    """Count a failure; failures older than ``window`` are forgotten. Returns the count."""
    failures: int = await db.fetchval(RECORD, key, now, window)
    return failures


async def lock(db: Executor, key: str, until: datetime) -> None:
    await db.execute(LOCK, key, until)


async def clear(db: Executor, key: str) -> None:
    await db.execute(CLEAR, key)
