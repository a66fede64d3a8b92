"""SQL of ``login_failures``: counters behind the login page's growing delays and locks.

An attempt is counted before its password is checked (``claim``), in one statement that also
sets the lock the count earns: of attempts sent at once, the ones past a key's allowance find
it locked and get no password checked. A success gives its count back (``release``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from idp.db.pool import Executor

SELECT_LOCKED_UNTIL = """
SELECT max(locked_until) FROM login_failures WHERE key = ANY($1::text[]) AND locked_until > $2
"""
# $1 keys, $2 now, $3 the window failures are remembered for, $4 the lock each count past the
# free ones earns ($4[1] for the first), $5 how many are free. Nothing is counted while a key is
# locked: not the locked key (the conditional DO UPDATE, which also sees locks set by attempts
# running at the same time), nor the others (NOT EXISTS, as of the statement's start). An index
# past the free ones clamps to $4's last lock; index 0 or less yields NULL: no lock.
_COUNT = "CASE WHEN f.last_failure_at < $2 - $3::interval THEN 1 ELSE f.failures + 1 END"
CLAIM = f"""
INSERT INTO login_failures AS f (key, failures, last_failure_at, locked_until)
SELECT key, 1, $2::timestamptz, $2 + ($4::interval[])[LEAST(1 - $5::int, cardinality($4))]
FROM unnest($1::text[]) AS key
WHERE NOT EXISTS (SELECT 1 FROM login_failures WHERE key = ANY($1) AND locked_until > $2)
ON CONFLICT (key) DO UPDATE SET
    failures = {_COUNT},
    last_failure_at = $2,
    locked_until = $2 + ($4::interval[])[LEAST({_COUNT} - $5, cardinality($4))]
WHERE f.locked_until IS NULL OR f.locked_until <= $2
RETURNING f.key, f.failures, f.locked_until
"""
# A success gives back what its claim counted, and lifts the lock that claim set (any other lock
# was set by other attempts and stays).
RELEASE = """
UPDATE login_failures f SET
    failures = GREATEST(f.failures - 1, 0),
    locked_until = CASE WHEN f.locked_until = c.locked_until THEN NULL ELSE f.locked_until END
FROM unnest($1::text[], $2::timestamptz[]) AS c (key, locked_until)
WHERE f.key = c.key
"""
CLEAR = "DELETE FROM login_failures WHERE key = $1"


@dataclass(frozen=True)
class Counted:
    """One key's count after an attempt was claimed, and the lock that count set (or None)."""

    key: str
    failures: int
    locked_until: datetime | None


async def claim(
    db: Executor,
    keys: list[str],
    now: datetime,
    window: timedelta,
    locks: list[timedelta],
    free: int,
) -> list[Counted] | None:
    """Count an attempt against every key, before its password is checked, and lock each key
    whose count passes ``free`` for ``locks[count - free - 1]`` (the last one past the end);
    failures older than ``window`` are forgotten. None if a key is locked: nothing is counted
    then (but for a race with another attempt, which may count one key more)."""
    rows = await db.fetch(CLAIM, keys, now, window, locks, free)
    if len(rows) < len(keys):
        return None
    return [Counted(row["key"], row["failures"], row["locked_until"]) for row in rows]


async def release(db: Executor, counted: list[Counted]) -> None:
    """Give back the count of an attempt that succeeded, and lift the locks it set."""
    await db.execute(RELEASE, [c.key for c in counted], [c.locked_until for c in counted])


async def locked_until(db: Executor, keys: list[str], now: datetime) -> datetime | None:
    value: datetime | None = await db.fetchval(SELECT_LOCKED_UNTIL, keys, now)
    return value


async def clear(db: Executor, key: str) -> None:
    await db.execute(CLEAR, key)
