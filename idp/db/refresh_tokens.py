"""SQL of ``refresh_families``: one row per family, holding its current refresh token
(migration 0010)."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from idp.db import refresh_rule
from idp.db.authorization_codes import PASSWORD_ONLY
from idp.db.pool import Executor

INSERT_FAMILY = """
INSERT INTO refresh_families (id, client_id, user_id, sid, scopes, audience, auth_time,
    created_at, expires_at, handle_hash, token_hash, token_issued_at, idle_expires_at,
    jti_window_at, amr, acr)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::timestamptz, $9, $10, $11, $8,
    LEAST($8 + $12::interval, $9), $8, $13, $14)
"""
# One UPDATE of the family's row, found by its handle, where the refresh rule holds
# (idp.db.refresh_rule): of concurrent uses of one token exactly one matches, the others find it
# replaced once the row lock is free. It changes no indexed column, so it is a HOT update. Each
# condition costs on every refresh, so the jti window moves on in a statement of its own.
_ROTATE = """
UPDATE refresh_families f SET
    previous_hash = f.token_hash,
    token_hash = $4,
    token_issued_at = $3,
    idle_expires_at = LEAST($3 + $6::interval, f.expires_at),
    successor_response = NULL,
    generation = f.generation + 1
WHERE f.handle_hash = $1 AND {rule}
RETURNING f.id AS family_id, f.generation, f.user_id, f.sid, f.scopes, f.audience, f.auth_time,
    f.jti_window_at, f.amr, f.acr
"""
ROTATE = _ROTATE.format(rule=refresh_rule.where(narrowed=False))
ROTATE_NARROWED = _ROTATE.format(rule=refresh_rule.where(narrowed=True))
# Revoking a family deny-lists the jtis of generations from jti_older_from on: those of the
# current and the previous window, each at least an access-token lifetime (migration 0010). Late
# (a crash between the two statements), the window is only wider.
ROLL_JTI_WINDOW = """
UPDATE refresh_families SET
    jti_older_from = jti_window_from, jti_window_from = $3, jti_window_at = $4
WHERE id = $1 AND jti_window_at = $2
"""
# A presented token's family, for the grant's diagnosis, /revoke and /introspect. Disabling a
# user revokes their families (migration 0011): the users table is not read, as in the rotation.
SELECT_FAMILY = """
SELECT f.id, f.client_id, f.user_id, f.scopes, f.audience, f.created_at, f.expires_at,
    f.revoked_at, f.token_hash, f.previous_hash, f.token_issued_at, f.idle_expires_at,
    f.successor_response, f.generation
FROM refresh_families f
WHERE f.handle_hash = $1
"""
SEAL_SUCCESSOR = "UPDATE refresh_families SET successor_response = $2 WHERE id = $1"
# An access token is alive at most one lifetime after it was issued: the family's window of
# generations that may be alive (idp_family_access_jtis, migration 0010) is deny-listed.
REVOKE_FAMILY = """
WITH family AS (
    UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3
    WHERE id = $1 AND revoked_at IS NULL
    RETURNING id, access_jtis, jti_older_from, generation
)
INSERT INTO revoked_access_tokens (jti, expires_at)
SELECT idp_family_access_jtis(id, access_jtis, jti_older_from, generation), $4 FROM family
ON CONFLICT (jti) DO NOTHING
RETURNING jti, expires_at
"""


def family_access_jti(family_id: uuid.UUID, generation: int) -> str:
    """The jti of the access token issued beside a family's ``generation``-th token; the same
    as SQL's idp_family_access_jtis. It names the family by its id, never by its handle: an
    access token shows resource servers nothing that makes a refresh token."""
    return f"{family_id.hex}.{generation}"


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
    amr: list[str] = field(default_factory=lambda: list(PASSWORD_ONLY))  # the sign-in's
    acr: str | None = None  # the class its request asked for and met; None: derived from amr


@dataclass(frozen=True)
class Rotation:
    """A rotated family: its new generation, its user and what it grants."""

    family_id: uuid.UUID
    generation: int
    user_id: uuid.UUID
    sid: str
    scopes: list[str]
    audience: list[str]
    auth_time: datetime
    jti_window_at: datetime  # when the family's current jti window began
    amr: list[str] | None  # the sign-in's (RFC 8176); None: a family from before it was kept
    acr: str | None  # the class its request asked for and met; None: derived from amr

    @property
    def access_jti(self) -> str:
        return family_access_jti(self.family_id, self.generation)


@dataclass(frozen=True)
class Stored:
    """A family as a presented token's handle found it, with its current and previous token."""

    id: uuid.UUID
    client_id: str
    user_id: uuid.UUID
    scopes: list[str]
    audience: list[str]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    token_hash: bytes | None
    previous_hash: bytes | None
    token_issued_at: datetime  # also when the previous token was used
    idle_expires_at: datetime
    successor_response: bytes | None
    generation: int  # the current token's

    def is_current(self, token_hash: bytes) -> bool:
        return self.token_hash is not None and hmac.compare_digest(self.token_hash, token_hash)

    def is_previous(self, token_hash: bytes) -> bool:
        previous = self.previous_hash
        return previous is not None and hmac.compare_digest(previous, token_hash)


async def insert_family(
    db: Executor,
    family: Family,
    handle_hash: bytes,
    token_hash: bytes,
    now: datetime,
    idle_ttl: timedelta,
) -> None:
    """A new family, holding its first token."""
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
        handle_hash,
        token_hash,
        idle_ttl,
        family.amr,
        family.acr,
    )


async def rotate(
    db: Executor,
    handle_hash: bytes,
    token_hash: bytes,
    now: datetime,
    successor_hash: bytes,
    client_id: str,
    idle_ttl: timedelta,
    scopes: list[str] | None,
) -> Rotation | None:
    """Replace the current token of a live family with ``successor_hash``, of the next
    generation; None if the token is not the current one of a live family of this client (or
    ``scopes`` are not within the family's)."""
    args = (handle_hash, token_hash, now, successor_hash, client_id, idle_ttl)
    if scopes is None:
        row = await db.fetchrow(ROTATE, *args)
    else:
        row = await db.fetchrow(ROTATE_NARROWED, *args, scopes)
    return None if row is None else Rotation(**row)  # the columns are its fields


async def roll_jti_window(db: Executor, rotated: Rotation, now: datetime) -> None:
    """Start a new jti window at the rotation's generation (once per access-token lifetime)."""
    await db.execute(
        ROLL_JTI_WINDOW, rotated.family_id, rotated.jti_window_at, rotated.generation, now
    )


async def find(db: Executor, handle_hash: bytes) -> Stored | None:
    row = await db.fetchrow(SELECT_FAMILY, handle_hash)
    return None if row is None else Stored(**row)  # the columns are its fields


async def seal_successor(db: Executor, family_id: uuid.UUID, sealed: bytes) -> None:
    await db.execute(SEAL_SUCCESSOR, family_id, sealed)


async def revoke_family(
    db: Executor, family_id: uuid.UUID, reason: str, now: datetime, deny_until: datetime
) -> list[tuple[str, datetime]]:
    """Revoke the family and deny-list every access token issued from it that may be alive;
    returns the entries added to the deny-list."""
    rows = await db.fetch(REVOKE_FAMILY, family_id, now, reason, deny_until)
    return [(row["jti"], row["expires_at"]) for row in rows]
