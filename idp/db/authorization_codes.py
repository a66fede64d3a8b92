"""SQL of ``authorization_codes`` and ``revoked_access_tokens``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from idp.db.pool import Executor

INSERT = """
INSERT INTO authorization_codes (code_hash, client_id, user_id, sid, redirect_uri, scopes,
    audience, nonce, code_challenge, auth_time, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""
# Consumed once, by one conditional statement: of concurrent exchanges exactly one gets the row.
CONSUME = """
UPDATE authorization_codes SET consumed_at = $3
WHERE code_hash = $1 AND client_id = $2 AND consumed_at IS NULL AND expires_at > $3
RETURNING user_id, sid, redirect_uri, scopes, audience, nonce, code_challenge, auth_time
"""
RECORD_ISSUED = "UPDATE authorization_codes SET issued_jtis = $2 WHERE code_hash = $1"
# A replayed code: RFC 6749 §4.1.2 says revoke what it issued. Returns those jtis.
SELECT_CONSUMED = """
SELECT issued_jtis FROM authorization_codes
WHERE code_hash = $1 AND client_id = $2 AND consumed_at IS NOT NULL
"""
REVOKE_JTIS = """
INSERT INTO revoked_access_tokens (jti, expires_at)
SELECT unnest($1::text[]), $2
ON CONFLICT (jti) DO NOTHING
RETURNING jti, expires_at
"""


@dataclass(frozen=True)
class CodeGrant:
    user_id: uuid.UUID
    sid: str
    redirect_uri: str
    scopes: list[str]
    audience: list[str]
    nonce: str | None
    code_challenge: str
    auth_time: datetime


async def insert(
    db: Executor,
    *,
    code_hash: bytes,
    client_id: str,
    grant: CodeGrant,
    now: datetime,
    expires_at: datetime,
) -> None:
    await db.execute(
        INSERT,
        code_hash,
        client_id,
        grant.user_id,
        grant.sid,
        grant.redirect_uri,
        grant.scopes,
        grant.audience,
        grant.nonce,
        grant.code_challenge,
        grant.auth_time,
        now,
        expires_at,
    )


async def consume(
    db: Executor, code_hash: bytes, client_id: str, now: datetime
) -> CodeGrant | None:
    row: asyncpg.Record | None = await db.fetchrow(CONSUME, code_hash, client_id, now)
    if row is None:
        return None
    return CodeGrant(
        user_id=row["user_id"],
        sid=row["sid"],
        redirect_uri=row["redirect_uri"],
        scopes=list(row["scopes"]),
        audience=list(row["audience"]),
        nonce=row["nonce"],
        code_challenge=row["code_challenge"],
        auth_time=row["auth_time"],
    )


async def record_issued(db: Executor, code_hash: bytes, jtis: list[str]) -> None:
    await db.execute(RECORD_ISSUED, code_hash, jtis)


async def revoke_replayed(
    db: Executor, code_hash: bytes, client_id: str, until: datetime
) -> list[tuple[str, datetime]] | None:
    """If the code was consumed already, deny-list what it issued and return the entries added
    (a replay); None if it was not consumed."""
    jtis = await db.fetchval(SELECT_CONSUMED, code_hash, client_id)
    if jtis is None:
        return None
    rows = await db.fetch(REVOKE_JTIS, list(jtis), until)
    return [(row["jti"], row["expires_at"]) for row in rows]
