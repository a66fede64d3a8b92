"""SQL of what a user edits of their own ``users`` row on the account page (their name). Kept
apart from ``idp.db.users`` only while the account page is built beside other work on it."""

from __future__ import annotations

import uuid
from datetime import datetime

from idp.db.pool import Executor

SET_NAME = "UPDATE users SET name = $2, updated_at = $3 WHERE id = $1 AND name IS DISTINCT FROM $2"


async def set_name(db: Executor, user_id: uuid.UUID, name: str | None, now: datetime) -> bool:
    """Whether the name changed (the same name again writes nothing)."""
    status: str = await db.execute(SET_NAME, user_id, name, now)
    return status != "UPDATE 0"
