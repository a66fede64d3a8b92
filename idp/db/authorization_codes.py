"""SQL of ``authorization_codes`` and ``revoked_access_tokens``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from idp.db.pool import Executor

# The amr of a sign-in with a password alone, and of rows written before amr was kept.
PASSWORD_ONLY = ("pwd",)

INSERT = """
INSERT INTO authorization_codes (code_hash, client_id, user_id, sid, redirect_uri, scopes,
    audience, nonce, code_challenge, auth_time, created_at, expires_at, amr, acr)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
"""
# Consumed once, by one conditional statement: of concurrent exchanges exactly one gets the row.
CONSUME = """
UPDATE authorization_codes SET consumed_at = $3
WHERE code_hash = $1 AND client_id = $2 AND consumed_at IS NULL AND expires_at > $3
RETURNING user_id, sid, redirect_uri, scopes, audience, nonce, code_challenge, auth_time, amr,
    acr
"""
# What the exchange issued, in the statement that must run anyway (migration 0012).
RECORD_ISSUED = """
UPDATE authorization_codes SET issued_jtis = $2, refresh_family_id = $3 WHERE code_hash = $1
"""
# A replayed code: RFC 6749 §4.1.2 says revoke what it issued: its access token here, the
# refresh family it started by idp.db.refresh_tokens.revoke_family.
SELECT_CONSUMED = """
SELECT user_id, issued_jtis, refresh_family_id FROM authorization_codes
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
    amr: list[str] = field(default_factory=lambda: list(PASSWORD_ONLY))  # RFC 8176 values
    acr: str | None = None  # the requested class met (idp.oauth.acr.reported); None: derived


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
        grant.amr,
        grant.acr,
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
        amr=list(row["amr"] or PASSWORD_ONLY),
        acr=row["acr"],
    )


@dataclass(frozen=True)
class Replayed:
    """A code presented again: the access tokens its exchange issued, now deny-listed, and the
    refresh family the exchange started, which the caller revokes."""

    user_id: uuid.UUID
    denied: list[tuple[str, datetime]]  # the deny-list entries added
    refresh_family_id: uuid.UUID | None


async def record_issued(
    db: Executor, code_hash: bytes, jtis: list[str], refresh_family_id: uuid.UUID | None
) -> None:
    await db.execute(RECORD_ISSUED, code_hash, jtis, refresh_family_id)


async def revoke_replayed(
    db: Executor, code_hash: bytes, client_id: str, until: datetime
) -> Replayed | None:
    """If the code was consumed already, deny-list the access tokens its exchange issued (a
    replay); None if it was not consumed."""
    row = await db.fetchrow(SELECT_CONSUMED, code_hash, client_id)
    if row is None:
        return None
    denied = await db.fetch(REVOKE_JTIS, list(row["issued_jtis"]), until)
    return Replayed(
        user_id=row["user_id"],
        denied=[(entry["jti"], entry["expires_at"]) for entry in denied],
        refresh_family_id=row["refresh_family_id"],
    )
