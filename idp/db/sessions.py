"""SQL of the ``sessions`` table: sign-in sessions, stored by the SHA-256 of their cookie."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from idp.db.pool import Executor

_COLUMNS = "sid, user_id, auth_time, expires_at"
INSERT = """
INSERT INTO sessions (id_hash, sid, user_id, auth_time, created_at, expires_at)
VALUES ($1, $2, $3, $4, $4, $5)
"""
SELECT_LIVE = f"""
SELECT {_COLUMNS} FROM sessions
WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > $2
"""
END = "UPDATE sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL"


@dataclass(frozen=True)
class Session:
    sid: str
    user_id: uuid.UUID
    auth_time: datetime
    expires_at: datetime


async def insert(
    db: Executor,
    *,
    id_hash: bytes,
    sid: str,
    user_id: uuid.UUID,
    now: datetime,
    expires_at: datetime,
) -> None:
    await db.execute(INSERT, id_hash, sid, user_id, now, expires_at)


async def live(db: Executor, id_hash: bytes, now: datetime) -> Session | None:
    row: asyncpg.Record | None = await db.fetchrow(SELECT_LIVE, id_hash, now)
    if row is None:
        return None
    return Session(row["sid"], row["user_id"], row["auth_time"], row["expires_at"])


async def end(db: Executor, id_hash: bytes, now: datetime) -> None:
    await db.execute(END, id_hash, now)
