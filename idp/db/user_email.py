"""SQL of a user's address as verification changes it: marked verified, or replaced by a new one
the owner confirmed."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from idp.db.pool import Executor
from idp.db.users import EmailTakenError, User, user_from

_COLUMNS = (
    "id, email, name, email_verified, password_hash, roles, disabled, created_at, must_verify_email"
)
# Only while the address is still the one the mail went to: a link for an old address verifies
# nothing.
MARK_VERIFIED = f"""
UPDATE users SET email_verified = true, must_verify_email = false, updated_at = $3
WHERE id = $1 AND lower(email) = lower($2)
RETURNING {_COLUMNS}
"""
REPLACE = f"""
UPDATE users SET email = $2, email_verified = true, must_verify_email = false, updated_at = $3
WHERE id = $1
RETURNING {_COLUMNS}
"""


async def mark_verified(db: Executor, user_id: uuid.UUID, email: str, now: datetime) -> User | None:
    """The user, now verified; None if they are gone or their address is no longer ``email``."""
    row = await db.fetchrow(MARK_VERIFIED, user_id, email, now)
    return None if row is None else user_from(row)


async def replace_email(db: Executor, user_id: uuid.UUID, email: str, now: datetime) -> User | None:
    """The user with ``email`` as their verified address; None if they are gone;
    EmailTakenError if another user has it."""
    try:
        row = await db.fetchrow(REPLACE, user_id, email, now)
    except asyncpg.UniqueViolationError:
        raise EmailTakenError(email) from None
    return None if row is None else user_from(row)
