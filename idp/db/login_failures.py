"""SQL of ``login_failures``: counters behind the login page's growing delays and locks.

An account's (or a device cookie's) attempt is counted before its password is checked
(``claim``), in one statement that also sets the lock the count earns: of attempts sent at once,
the ones past the allowance find the key locked and get no password checked. A client IP counts
failures only, after the check (``count``), so people signing in at once behind one address are
never refused for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from idp.db.pool import Executor

SELECT_LOCKED_UNTIL = """
SELECT max(locked_until) FROM login_failures WHERE key = ANY($1::text[]) AND locked_until > $2
"""
# $1 the keys to count, $2 now, $3 the window failures are remembered for, $4 the lock each count
# past the free ones earns ($4[1] for the first), $5 how many are free. A count past the free
# ones clamps to $4's last lock; index 0 or less yields NULL: no lock.
_COUNTED = "CASE WHEN f.last_failure_at < $2 - $3::interval THEN 1 ELSE f.failures + 1 END"
_COUNT = f"""
INSERT INTO login_failures AS f (key, failures, last_failure_at, locked_until)
SELECT key, 1, $2::timestamptz, $2 + ($4::interval[])[LEAST(1 - $5::int, cardinality($4))]
FROM unnest($1::text[]) AS key{{unless_locked}}
ON CONFLICT (key) DO UPDATE SET
    failures = {_COUNTED},
    last_failure_at = $2,
    locked_until = $2 + ($4::interval[])[LEAST({_COUNTED} - $5, cardinality($4))]{{unlocked}}
RETURNING f.key, f.failures, f.locked_until
"""
COUNT = _COUNT.format(unless_locked="", unlocked="")
# Nothing is counted while a key of $6 is locked: not the locked key (the conditional DO UPDATE,
# which also sees a lock set by an attempt running at the same time), nor the others (NOT EXISTS,
# as of the statement's start).
CLAIM = _COUNT.format(
    unless_locked="""
WHERE NOT EXISTS (
    SELECT 1 FROM login_failures WHERE key = ANY($6::text[]) AND locked_until > $2
)""",
    unlocked="""
WHERE f.locked_until IS NULL OR f.locked_until <= $2""",
)
CLEAR = "DELETE FROM login_failures WHERE key = $1"
# The account's key folded as users.for_sign_in folds it (PostgreSQL's lower, not Python's).
CLEAR_ACCOUNT = "DELETE FROM login_failures WHERE key = 'email:' || lower($1::text)"


@dataclass(frozen=True)
class Counted:
    """One key's count after an attempt, and the lock that count set (or None)."""

    key: str
    failures: int
    locked_until: datetime | None


async def claim(
    db: Executor,
    key: str,
    checked: list[str],
    now: datetime,
    window: timedelta,
    locks: list[timedelta],
    free: int,
) -> Counted | None:
    """Count an attempt against ``key`` before its password is checked, and lock the key if its
    count passes ``free``, for ``locks[count - free - 1]`` (the last one past the end); failures
    older than ``window`` are forgotten. None, counting nothing, if a key of ``checked`` (which
    holds ``key``) is locked."""
    row = await db.fetchrow(CLAIM, [key], now, window, locks, free, checked)
    return None if row is None else Counted(row["key"], row["failures"], row["locked_until"])


async def count(
    db: Executor,
    keys: list[str],
    now: datetime,
    window: timedelta,
    locks: list[timedelta],
    free: int,
) -> list[Counted]:
    """Count a failure against each of ``keys``, locking as ``claim`` does."""
    rows = await db.fetch(COUNT, keys, now, window, locks, free)
    return [Counted(row["key"], row["failures"], row["locked_until"]) for row in rows]


async def locked_until(db: Executor, keys: list[str], now: datetime) -> datetime | None:
    value: datetime | None = await db.fetchval(SELECT_LOCKED_UNTIL, keys, now)
    return value


async def clear(db: Executor, key: str) -> None:
    await db.execute(CLEAR, key)


async def clear_account(db: Executor, email: str) -> None:
    """Lift the lock and forget the failures of the account ``email`` names."""
    await db.execute(CLEAR_ACCOUNT, email)
