"""SQL of ``consents``: what a user allowed a client, remembered per user and client."""

from __future__ import annotations

import uuid
from datetime import datetime

from idp.db.pool import Executor

SELECT = "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2"
UPSERT = """
INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, client_id) DO UPDATE
SET scopes = ARRAY(SELECT DISTINCT s FROM unnest(consents.scopes || EXCLUDED.scopes) AS s),
    granted_at = EXCLUDED.granted_at
"""


async def granted(db: Executor, user_id: uuid.UUID, client_id: str) -> set[str]:
    scopes = await db.fetchval(SELECT, user_id, client_id)
    return set(scopes or ())


async def grant(
    db: Executor, user_id: uuid.UUID, client_id: str, scopes: list[str], now: datetime
) -> None:
    await db.execute(UPSERT, user_id, client_id, scopes, now)
