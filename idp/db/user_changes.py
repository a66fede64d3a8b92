"""SQL of the ``users`` changes a password reset and an accepted invitation make beside the new
password: the address proven, the name the invitee chose."""

from __future__ import annotations

import uuid
from datetime import datetime

from idp.db.pool import Executor

MARK_EMAIL_VERIFIED = """
UPDATE users SET email_verified = true, must_verify_email = false, updated_at = $2 WHERE id = $1
"""
SET_NAME = "UPDATE users SET name = $2, updated_at = $3 WHERE id = $1"


async def mark_email_verified(db: Executor, user_id: uuid.UUID, now: datetime) -> None:
    await db.execute(MARK_EMAIL_VERIFIED, user_id, now)


async def set_name(db: Executor, user_id: uuid.UUID, name: str | None, now: datetime) -> None:
    await db.execute(SET_NAME, user_id, name, now)
