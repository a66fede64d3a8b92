"""SQL of ``refresh_families`` and ``refresh_tokens``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from idp.db.pool import Executor
from idp.db.users import User, user_from

INSERT_FAMILY = """
INSERT INTO refresh_families (id, client_id, user_id, sid, scopes, audience, auth_time,
    created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""
_FAMILY_COLUMNS = """f.id, f.client_id, f.user_id, f.sid, f.scopes, f.audience, f.auth_time,
    f.expires_at, f.revoked_at"""
# One conditional statement: of concurrent uses of one token, exactly one consumes it (the
# others wait on the row lock, then find it consumed).
# The family's user comes back too: the refresh re-reads it, in the same round trip.
CONSUME = f"""
UPDATE refresh_tokens t SET consumed_at = $2
FROM refresh_families f JOIN users u ON u.id = f.user_id
WHERE t.token_hash = $1 AND t.consumed_at IS NULL AND f.id = t.family_id AND f.client_id = $3
RETURNING t.idle_expires_at, {_FAMILY_COLUMNS}, u.id AS u_id, u.email AS u_email,
    u.name AS u_name, u.email_verified AS u_email_verified, u.password_hash AS u_password_hash,
    u.roles AS u_roles, u.disabled AS u_disabled, u.created_at AS u_created_at
"""
SELECT_CONSUMED = f"""
SELECT t.consumed_at, t.successor_response, {_FAMILY_COLUMNS}
FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
WHERE t.token_hash = $1
"""
SEAL_SUCCESSOR = "UPDATE refresh_tokens SET successor_response = $2 WHERE token_hash = $1"
# A successor token and the access token issued with it, in one round trip.
ADD_SUCCESSOR = """
WITH successor AS (
    INSERT INTO refresh_tokens (token_hash, family_id, created_at, idle_expires_at)
    VALUES ($1, $2, $3, $4)
)
UPDATE refresh_families SET access_jtis = array_append(access_jtis, $5) WHERE id = $2
"""
REVOKE_FAMILY = """
UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3
WHERE id = $1 AND revoked_at IS NULL
RETURNING access_jtis
"""
DENY_JTIS = """
INSERT INTO revoked_access_tokens (jti, expires_at)
SELECT unnest($1::text[]), $2
ON CONFLICT (jti) DO NOTHING
"""


@dataclass(frozen=True)
class Family:
    id: uuid.UUID
    client_id: str
    user_id: uuid.UUID
    sid: str
    scopes: list[str]
    audience: list[str]
    auth_time: datetime
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Consumed:
    """A token found consumed already: when, by which family, and the sealed answer if kept."""

    consumed_at: datetime
    successor_response: bytes | None
    family: Family


def _family(row: asyncpg.Record) -> Family:
    return Family(
        id=row["id"],
        client_id=row["client_id"],
        user_id=row["user_id"],
        sid=row["sid"],
        scopes=list(row["scopes"]),
        audience=list(row["audience"]),
        auth_time=row["auth_time"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


async def insert_family(db: Executor, family: Family, now: datetime) -> None:
    await db.execute(
        INSERT_FAMILY,
        family.id,
        family.client_id,
        family.user_id,
        family.sid,
        family.scopes,
        family.audience,
        family.auth_time,
        now,
        family.expires_at,
    )


async def consume(
    db: Executor, token_hash: bytes, client_id: str, now: datetime
) -> tuple[datetime, Family, User] | None:
    """(idle expiry, family, its user) if this call consumed the token for its own client."""
    row = await db.fetchrow(CONSUME, token_hash, now, client_id)
    if row is None:
        return None
    return row["idle_expires_at"], _family(row), user_from(row, prefix="u_")


async def add_token_and_jti(
    db: Executor,
    token_hash: bytes,
    family_id: uuid.UUID,
    now: datetime,
    idle_expires_at: datetime,
    access_jti: str,
) -> None:
    await db.execute(ADD_SUCCESSOR, token_hash, family_id, now, idle_expires_at, access_jti)


async def consumed(db: Executor, token_hash: bytes) -> Consumed | None:
    row = await db.fetchrow(SELECT_CONSUMED, token_hash)
    if row is None or row["consumed_at"] is None:
        return None
    return Consumed(row["consumed_at"], row["successor_response"], _family(row))


async def seal_successor(db: Executor, token_hash: bytes, sealed: bytes) -> None:
    await db.execute(SEAL_SUCCESSOR, token_hash, sealed)


async def revoke_family(
    db: Executor, family_id: uuid.UUID, reason: str, now: datetime, deny_until: datetime
) -> None:
    """Revoke the family and deny-list every access token issued from it."""
    jtis = await db.fetchval(REVOKE_FAMILY, family_id, now, reason)
    if jtis:
        await db.execute(DENY_JTIS, list(jtis), deny_until)
