"""Lookups behind /revoke, /introspect and the deny-list: a token's live state, one round trip
each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from idp.db import refresh_rule, refresh_tokens
from idp.db.pool import Executor

IS_DENIED = "SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $1)"
DENIED_SINCE = "SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at > $1"
DENY_JTI = """
INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2)
ON CONFLICT (jti) DO NOTHING
"""


@dataclass(frozen=True)
class RefreshState:
    """A presented refresh token: its family's row, and the token's digest (the family's current
    token, or the one it replaced)."""

    family: refresh_tokens.Stored
    token_hash: bytes

    def active(self, now: datetime, client_id: str) -> bool:
        """RFC 7662 §2.2, for ``client_id`` introspecting it: the token would rotate, were that
        client to refresh with it now (the refresh rule, idp.db.refresh_rule, asking no scope).
        The token it replaced is not active, even within IDP_REFRESH_REUSE_GRACE: it only
        gets its answer again."""
        return not refresh_rule.failed(self.family, self.token_hash, client_id, now, None)


async def refresh_state(db: Executor, handle_hash: bytes, token_hash: bytes) -> RefreshState | None:
    """The state of a family's current token, or of the one it replaced; None for any other
    token."""
    family = await refresh_tokens.find(db, handle_hash)
    if family is None:
        return None
    if family.is_current(token_hash) or family.is_previous(token_hash):
        return RefreshState(family, token_hash)
    return None


async def is_denied(db: Executor, jti: str) -> bool:
    denied: bool = await db.fetchval(IS_DENIED, jti)
    return denied


async def denied_since(db: Executor, now: datetime) -> dict[str, datetime]:
    """Every deny-list entry still in force."""
    return {row["jti"]: row["expires_at"] for row in await db.fetch(DENIED_SINCE, now)}


async def deny_access_token(db: Executor, jti: str, until: datetime) -> None:
    await db.execute(DENY_JTI, jti, until)
