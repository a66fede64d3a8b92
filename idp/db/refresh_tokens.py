"""SQL of ``refresh_families`` and ``refresh_tokens``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

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
# The whole rotation is one statement, so it needs no explicit transaction: it consumes the
# presented token (of concurrent uses of one token exactly one matches; the others wait on the
# row lock, then find it consumed) and, if the family is live, adds the successor, which records
# the jti of the access token issued beside it. A widened scope matches nothing, so the token is
# kept. The family's user comes back too: each refresh re-reads it in the same round trip.
ROTATE = f"""
WITH used AS (
    UPDATE refresh_tokens t SET consumed_at = $2
    FROM refresh_families f JOIN users u ON u.id = f.user_id
    WHERE t.token_hash = $1 AND t.consumed_at IS NULL AND f.id = t.family_id
        AND f.client_id = $3 AND ($4::text[] IS NULL OR $4::text[] <@ f.scopes)
    RETURNING t.idle_expires_at, {_FAMILY_COLUMNS}, u.id AS u_id, u.email AS u_email,
        u.name AS u_name, u.email_verified AS u_email_verified,
        u.password_hash AS u_password_hash, u.roles AS u_roles, u.disabled AS u_disabled,
        u.created_at AS u_created_at
), live AS (
    SELECT id, expires_at FROM used
    WHERE revoked_at IS NULL AND $2 < expires_at AND $2 < idle_expires_at AND NOT u_disabled
), successor AS (
    INSERT INTO refresh_tokens (token_hash, family_id, created_at, idle_expires_at, access_jti)
    SELECT $5, id, $2, LEAST($2 + $7::interval, expires_at), $6 FROM live
    RETURNING family_id
)
SELECT used.*, EXISTS (SELECT 1 FROM successor) AS rotated FROM used
"""
SELECT_TOKEN = f"""
SELECT t.consumed_at, t.successor_response, {_FAMILY_COLUMNS}
FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
WHERE t.token_hash = $1
"""
SEAL_SUCCESSOR = "UPDATE refresh_tokens SET successor_response = $2 WHERE token_hash = $1"
# A family's first token, with the jti of the access token issued beside it.
ADD_FIRST = """
INSERT INTO refresh_tokens (token_hash, family_id, created_at, idle_expires_at, access_jti)
VALUES ($1, $2, $3, $4, $5)
"""
# An access token is alive at most $4 - $2 (the longest TTL + skew) after it was issued: only
# those of the family's tokens created since then need deny-listing.
REVOKE_FAMILY = """
WITH family AS (
    UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3
    WHERE id = $1 AND revoked_at IS NULL
    RETURNING id, access_jtis
), issued AS (
    SELECT unnest(access_jtis) AS jti FROM family
    UNION
    SELECT t.access_jti FROM refresh_tokens t JOIN family ON t.family_id = family.id
    WHERE t.access_jti IS NOT NULL AND t.created_at > $2 - ($4 - $2)
)
INSERT INTO revoked_access_tokens (jti, expires_at)
SELECT jti, $4 FROM issued
ON CONFLICT (jti) DO NOTHING
RETURNING jti, expires_at
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
class Rotation:
    """A token this call consumed: its family, the family's user, and whether the successor was
    added (only for a live family: not revoked, not expired, its user not disabled)."""

    idle_expires_at: datetime
    family: Family
    user: User
    rotated: bool


@dataclass(frozen=True)
class Presented:
    """A token the rotation did not consume: when it was consumed (None if it never was), the
    sealed answer kept for the grace window, and its family."""

    consumed_at: datetime | None
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


async def rotate(
    db: Executor,
    token_hash: bytes,
    client_id: str,
    scopes: list[str] | None,
    now: datetime,
    successor_hash: bytes,
    access_jti: str,
    idle_ttl: timedelta,
) -> Rotation | None:
    """Consume the token for its own client (and a scope within the family's), adding the
    successor if the family is live; None if nothing was consumed."""
    row = await db.fetchrow(
        ROTATE, token_hash, now, client_id, scopes, successor_hash, access_jti, idle_ttl
    )
    if row is None:
        return None
    return Rotation(
        row["idle_expires_at"], _family(row), user_from(row, prefix="u_"), row["rotated"]
    )


async def add_token_and_jti(
    db: Executor,
    token_hash: bytes,
    family_id: uuid.UUID,
    now: datetime,
    idle_expires_at: datetime,
    access_jti: str,
) -> None:
    """A family's first token, and the access token issued with it (the code exchange)."""
    await db.execute(ADD_FIRST, token_hash, family_id, now, idle_expires_at, access_jti)


async def find(db: Executor, token_hash: bytes) -> Presented | None:
    row = await db.fetchrow(SELECT_TOKEN, token_hash)
    if row is None:
        return None
    return Presented(row["consumed_at"], row["successor_response"], _family(row))


async def seal_successor(db: Executor, token_hash: bytes, sealed: bytes) -> None:
    await db.execute(SEAL_SUCCESSOR, token_hash, sealed)


async def revoke_family(
    db: Executor, family_id: uuid.UUID, reason: str, now: datetime, deny_until: datetime
) -> list[tuple[str, datetime]]:
    """Revoke the family and deny-list every access token issued from it that may be alive;
    returns the entries added to the deny-list."""
    rows = await db.fetch(REVOKE_FAMILY, family_id, now, reason, deny_until)
    return [(row["jti"], row["expires_at"]) for row in rows]
