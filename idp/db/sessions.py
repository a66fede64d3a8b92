"""SQL of the ``sessions`` table: sign-in sessions, stored by the SHA-256 of their cookie, with
what the account page shows of each (the browser's User-Agent and IP, when it was last used)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from idp.db.pool import Executor

_COLUMNS = "sid, user_id, auth_time, expires_at, amr"
INSERT = """
INSERT INTO sessions (id_hash, sid, user_id, auth_time, created_at, expires_at, user_agent, ip,
    last_seen_at, amr, mfa_at)
VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $4, $8, $9)
"""
SELECT_LIVE = f"""
SELECT {_COLUMNS} FROM sessions
WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > $2
"""
# The live read and, in the same statement, last_seen_at moved on if it is older than $3: the
# UPDATE's own condition (rechecked on the newest row version when two uses race) makes it a
# write at most once per $3 per session; the SELECT sees the row as the statement began.
SELECT_LIVE_SEEN = f"""
WITH seen AS (
    UPDATE sessions SET last_seen_at = $2
    WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > $2
        AND (last_seen_at IS NULL OR last_seen_at <= $2 - $3::interval)
)
{SELECT_LIVE}
"""
END = "UPDATE sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL"
# Step-up: the live session $1 of user $2 now has a second factor too; auth_time stays the time
# of its sign-in, mfa_at says when the second factor was given.
STEP_UP = f"""
UPDATE sessions SET amr = $3, mfa_at = $4
WHERE sid = $1 AND user_id = $2 AND ended_at IS NULL AND expires_at > $4
RETURNING {_COLUMNS}
"""
_LISTED = "sid, created_at, auth_time, expires_at, last_seen_at, user_agent, ip"
SELECT_OF_USER = f"""
SELECT {_LISTED} FROM sessions
WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2
ORDER BY last_seen_at DESC NULLS LAST, created_at DESC
"""
# The user's own live session $2 only: a sid of another user matches nothing.
END_OF_USER = """
UPDATE sessions SET ended_at = $3
WHERE user_id = $1 AND sid = $2 AND ended_at IS NULL AND expires_at > $3
RETURNING sid
"""
END_OTHERS_OF_USER = """
UPDATE sessions SET ended_at = $3
WHERE user_id = $1 AND sid <> $2 AND ended_at IS NULL AND expires_at > $3
RETURNING sid
"""


@dataclass(frozen=True)
class Session:
    sid: str
    user_id: uuid.UUID
    auth_time: datetime
    expires_at: datetime
    amr: tuple[str, ...]  # RFC 8176: the factors it signed in with


@dataclass(frozen=True)
class ListedSession:
    """A live session as its user sees it on the account page."""

    sid: str
    created_at: datetime
    auth_time: datetime
    expires_at: datetime
    last_seen_at: datetime | None  # None: started before idp recorded it
    user_agent: str | None
    ip: str | None


async def insert(
    db: Executor,
    *,
    id_hash: bytes,
    sid: str,
    user_id: uuid.UUID,
    now: datetime,
    expires_at: datetime,
    user_agent: str | None = None,
    ip: str | None = None,
    amr: tuple[str, ...] = ("pwd",),
    mfa_at: datetime | None = None,
) -> None:
    await db.execute(
        INSERT, id_hash, sid, user_id, now, expires_at, user_agent, ip, list(amr), mfa_at
    )


def _session(row: asyncpg.Record | None) -> Session | None:
    if row is None:
        return None
    amr = tuple(row["amr"])
    return Session(row["sid"], row["user_id"], row["auth_time"], row["expires_at"], amr)


async def live(db: Executor, id_hash: bytes, now: datetime) -> Session | None:
    return _session(await db.fetchrow(SELECT_LIVE, id_hash, now))


async def live_and_seen(
    db: Executor, id_hash: bytes, now: datetime, every: timedelta
) -> Session | None:
    """The live session, as ``live``; its ``last_seen_at`` moves to ``now`` if it is ``every``
    old or older, in the same statement (no read-then-write)."""
    return _session(await db.fetchrow(SELECT_LIVE_SEEN, id_hash, now, every))


async def step_up(
    db: Executor, sid: str, user_id: uuid.UUID, amr: tuple[str, ...], now: datetime
) -> Session | None:
    """The live session ``sid`` of ``user_id`` upgraded to ``amr`` (RFC 8176) by a second factor
    given at ``now``; None if it is not live (ended or expired meanwhile) or not the user's."""
    return _session(await db.fetchrow(STEP_UP, sid, user_id, list(amr), now))


async def end(db: Executor, id_hash: bytes, now: datetime) -> None:
    await db.execute(END, id_hash, now)


async def of_user(db: Executor, user_id: uuid.UUID, now: datetime) -> list[ListedSession]:
    """The user's live sessions, the most recently used first."""
    rows = await db.fetch(SELECT_OF_USER, user_id, now)
    return [ListedSession(**row) for row in rows]  # the columns are its fields


async def end_of_user(db: Executor, user_id: uuid.UUID, sid: str, now: datetime) -> bool:
    """End the live session ``sid`` if it is the user's; False if it is not (or not live)."""
    return await db.fetchval(END_OF_USER, user_id, sid, now) is not None


async def end_others_of_user(
    db: Executor, user_id: uuid.UUID, keep_sid: str, now: datetime
) -> list[str]:
    """End every live session of the user but ``keep_sid``; the sids ended."""
    return [row["sid"] for row in await db.fetch(END_OTHERS_OF_USER, user_id, keep_sid, now)]


# The management API's list of a user's live sessions, keyset-paged by (created_at, sid).
SELECT_PAGE_OF_USER = f"""
SELECT {_LISTED} FROM sessions
WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2
    AND ($3::timestamptz IS NULL OR (created_at, sid) > ($3, $4))
ORDER BY created_at, sid
LIMIT $5
"""


async def page_of_user(
    db: Executor,
    user_id: uuid.UUID,
    now: datetime,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[ListedSession]:
    """The user's live sessions in the order they began, ``limit`` at a time after ``after``."""
    created_at, sid = after if after is not None else (None, "")
    rows = await db.fetch(SELECT_PAGE_OF_USER, user_id, now, created_at, sid, limit)
    return [ListedSession(**row) for row in rows]
