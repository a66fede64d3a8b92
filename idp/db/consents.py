"""SQL of ``consents``: what a user allowed a client, remembered per user and client."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from idp.db.pool import Executor

SELECT = "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2"
UPSERT = """
INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, client_id) DO UPDATE
SET scopes = ARRAY(SELECT DISTINCT s FROM unnest(consents.scopes || EXCLUDED.scopes) AS s),
    granted_at = EXCLUDED.granted_at
"""
# A user's consents with the name of each client, for the account page.
SELECT_OF_USER = """
SELECT c.client_id, k.name AS client_name, c.scopes, c.granted_at
FROM consents c JOIN clients k ON k.client_id = c.client_id
WHERE c.user_id = $1
ORDER BY c.granted_at DESC, c.client_id
"""
DELETE = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2 RETURNING client_id"


@dataclass(frozen=True)
class Consent:
    client_id: str
    client_name: str
    scopes: list[str]
    granted_at: datetime


async def granted(db: Executor, user_id: uuid.UUID, client_id: str) -> set[str]:
    scopes = await db.fetchval(SELECT, user_id, client_id)
    return set(scopes or ())


async def grant(
    db: Executor, user_id: uuid.UUID, client_id: str, scopes: list[str], now: datetime
) -> None:
    await db.execute(UPSERT, user_id, client_id, scopes, now)


async def of_user(db: Executor, user_id: uuid.UUID) -> list[Consent]:
    """The user's consents, the latest first."""
    return [Consent(**row) for row in await db.fetch(SELECT_OF_USER, user_id)]


async def revoke(db: Executor, user_id: uuid.UUID, client_id: str) -> bool:
    """Forget the user's consent to ``client_id``; False if there was none."""
    return await db.fetchval(DELETE, user_id, client_id) is not None


# The management API's list of a user's consents, keyset-paged by client_id (the primary key).
SELECT_PAGE_OF_USER = """
SELECT c.client_id, k.name AS client_name, c.scopes, c.granted_at
FROM consents c JOIN clients k ON k.client_id = c.client_id
WHERE c.user_id = $1 AND c.client_id > $2
ORDER BY c.client_id
LIMIT $3
"""


async def page_of_user(
    db: Executor, user_id: uuid.UUID, *, after: str, limit: int
) -> list[Consent]:
    """The user's consents by client_id, ``limit`` at a time after ``after`` ("" first)."""
    return [Consent(**row) for row in await db.fetch(SELECT_PAGE_OF_USER, user_id, after, limit)]
