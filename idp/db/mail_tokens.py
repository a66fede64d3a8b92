"""SQL of ``mail_tokens``: the tokens mails carry, stored by their SHA-256."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from idp.db.pool import Executor

_COLUMNS = "purpose, user_id, email, resume, created_at, expires_at"
INSERT = """
INSERT INTO mail_tokens (token_hash, purpose, user_id, email, resume, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)
"""
SELECT_LIVE = f"""
SELECT {_COLUMNS} FROM mail_tokens
WHERE token_hash = $1 AND purpose = ANY($2::text[]) AND used_at IS NULL AND expires_at > $3
"""
USE = f"""
UPDATE mail_tokens SET used_at = $3
WHERE token_hash = $1 AND purpose = ANY($2::text[]) AND used_at IS NULL AND expires_at > $3
RETURNING {_COLUMNS}
"""
VOID = """
UPDATE mail_tokens SET used_at = $3
WHERE user_id = $1 AND purpose = ANY($2::text[]) AND used_at IS NULL
"""


@dataclass(frozen=True)
class MailTokenRow:
    purpose: str
    user_id: uuid.UUID
    email: str
    resume: dict[str, Any] | None
    created_at: datetime
    expires_at: datetime


def _row(row: asyncpg.Record | None) -> MailTokenRow | None:
    if row is None:
        return None
    resume = None if row["resume"] is None else json.loads(row["resume"])
    return MailTokenRow(
        row["purpose"], row["user_id"], row["email"], resume, row["created_at"], row["expires_at"]
    )


async def insert(
    db: Executor,
    *,
    token_hash: bytes,
    purpose: str,
    user_id: uuid.UUID,
    email: str,
    resume: dict[str, Any] | None,
    now: datetime,
    expires_at: datetime,
) -> None:
    text = None if resume is None else json.dumps(resume)
    await db.execute(INSERT, token_hash, purpose, user_id, email, text, now, expires_at)


async def live(
    db: Executor, token_hash: bytes, purposes: Sequence[str], now: datetime
) -> MailTokenRow | None:
    """The token's row if it is live and for one of ``purposes`` (its row says which)."""
    return _row(await db.fetchrow(SELECT_LIVE, token_hash, list(purposes), now))


async def use(
    db: Executor, token_hash: bytes, purposes: Sequence[str], now: datetime
) -> MailTokenRow | None:
    """Mark the token used and return it, if it was live and for one of ``purposes``: of two
    uses at once, one wins."""
    return _row(await db.fetchrow(USE, token_hash, list(purposes), now))


async def void(db: Executor, user_id: uuid.UUID, purposes: list[str], now: datetime) -> None:
    await db.execute(VOID, user_id, purposes, now)
