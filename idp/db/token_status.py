"""Lookups behind /revoke, /introspect and the deny-list: a token's live state, one round trip
each."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from idp.db import refresh_tokens
from idp.db.pool import Executor

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


async def refresh_state(db: Executor, handle_hash: bytes, token_hash: bytes) -> RefreshState | None:
    """The state of a family's current token, or of the one it replaced (consumed); None for
    any other token."""
    family = await refresh_tokens.find(db, handle_hash)
    if family is None:
        return None
    if family.is_current(token_hash):
        consumed_at = None
    elif family.is_previous(token_hash):
        consumed_at = family.token_issued_at
    else:
        return None
    return RefreshState(
        family_id=family.id,
        client_id=family.client_id,
        user_id=family.user_id,
        scopes=family.scopes,
        audience=family.audience,
        created_at=family.created_at,
        expires_at=family.expires_at,
        revoked_at=family.revoked_at,
        consumed_at=consumed_at,
        idle_expires_at=family.idle_expires_at,
        user_disabled=family.user_disabled,
    )


async def is_denied(db: Executor, jti: str) -> bool:
    denied: bool = await db.fetchval(IS_DENIED, jti)
    return denied


async def denied_since(db: Executor, now: datetime) -> dict[str, datetime]:
    """Every deny-list entry still in force."""
    return {row["jti"]: row["expires_at"] for row in await db.fetch(DENIED_SINCE, now)}


async def deny_access_token(db: Executor, jti: str, until: datetime) -> None:
    await db.execute(DENY_JTI, jti, until)
