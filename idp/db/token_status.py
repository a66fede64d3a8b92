"""Lookups behind /revoke, /introspect and the deny-list: a token's live state, one round trip
each."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from idp.db.pool import Executor

REFRESH_STATE = """
SELECT f.id, f.client_id, f.user_id, f.scopes, f.audience, f.created_at, f.expires_at,
       f.revoked_at, t.consumed_at, t.idle_expires_at, u.disabled AS user_disabled
FROM refresh_tokens t
JOIN refresh_families f ON f.id = t.family_id
JOIN users u ON u.id = f.user_id
WHERE t.token_hash = $1
"""
IS_DENIED = "SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $1)"
DENIED_SINCE = "SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at > $1"
DENY_JTI = """
INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2)
ON CONFLICT (jti) DO NOTHING
"""


@dataclass(frozen=True)
class RefreshState:
    family_id: uuid.UUID
    client_id: str
    user_id: uuid.UUID
    scopes: list[str]
    audience: list[str]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    consumed_at: datetime | None
    idle_expires_at: datetime
    user_disabled: bool

    def active(self, now: datetime) -> bool:
        return (
            self.revoked_at is None
            and self.consumed_at is None
            and now < self.expires_at
            and now < self.idle_expires_at
            and not self.user_disabled
        )


async def refresh_state(db: Executor, token_hash: bytes) -> RefreshState | None:
    row = await db.fetchrow(REFRESH_STATE, token_hash)
    if row is None:
        return None
    return RefreshState(
        family_id=row["id"],
        client_id=row["client_id"],
        user_id=row["user_id"],
        scopes=list(row["scopes"]),
        audience=list(row["audience"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        consumed_at=row["consumed_at"],
        idle_expires_at=row["idle_expires_at"],
        user_disabled=row["user_disabled"],
    )


async def is_denied(db: Executor, jti: str) -> bool:
    denied: bool = await db.fetchval(IS_DENIED, jti)
    return denied


async def denied_since(db: Executor, now: datetime) -> dict[str, datetime]:
    """Every deny-list entry still in force."""
    return {row["jti"]: row["expires_at"] for row in await db.fetch(DENIED_SINCE, now)}


async def deny_access_token(db: Executor, jti: str, until: datetime) -> None:
    await db.execute(DENY_JTI, jti, until)
