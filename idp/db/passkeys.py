"""SQL of ``passkey_users``, ``passkeys`` and ``webauthn_challenges``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from idp.db.pool import Executor

HANDLE_OF = "SELECT handle FROM passkey_users WHERE user_id = $1"
# Whichever of two concurrent first registrations wins, both read the one handle.
ENSURE_HANDLE = """
WITH made AS (
    INSERT INTO passkey_users (user_id, handle) VALUES ($1, $2)
    ON CONFLICT (user_id) DO NOTHING RETURNING handle
)
SELECT handle FROM made UNION ALL SELECT handle FROM passkey_users WHERE user_id = $1
LIMIT 1
"""
_COLUMNS = """credential_id, user_id, public_key, sign_count, name, transports, backup_eligible,
    backed_up, aaguid, created_at, last_used_at"""
INSERT = f"""
INSERT INTO passkeys ({_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)
ON CONFLICT (credential_id) DO NOTHING
RETURNING credential_id
"""
OF_USER = f"SELECT {_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, name"
# The user handle must name the credential's user (WebAuthn L2 §7.2 step 6).
BY_CREDENTIAL = f"""
SELECT {", ".join("p." + column.strip() for column in _COLUMNS.split(","))}, u.handle
FROM passkeys p JOIN passkey_users u ON u.user_id = p.user_id
WHERE p.credential_id = $1
"""
# §7.2 step 21: the counter moves forward only; of two concurrent uses of one signature counter
# value, one wins.
USED = """
UPDATE passkeys SET sign_count = $3, backed_up = $4, last_used_at = $5
WHERE credential_id = $1 AND sign_count = $2
RETURNING credential_id
"""
DELETE = "DELETE FROM passkeys WHERE user_id = $1 AND credential_id = $2 RETURNING name"
DELETE_OF_USER = "DELETE FROM passkeys WHERE user_id = $1"
SPEND_CHALLENGE = """
INSERT INTO webauthn_challenges (challenge_hash, expires_at) VALUES ($1, $2)
ON CONFLICT (challenge_hash) DO NOTHING
RETURNING challenge_hash
"""


@dataclass(frozen=True)
class Passkey:
    credential_id: bytes
    user_id: uuid.UUID
    public_key: bytes
    sign_count: int
    name: str
    transports: list[str]
    backup_eligible: bool
    backed_up: bool
    aaguid: str
    created_at: datetime
    last_used_at: datetime | None


async def handle_of(db: Executor, user_id: uuid.UUID) -> bytes | None:
    handle: bytes | None = await db.fetchval(HANDLE_OF, user_id)
    return handle


async def ensure_handle(db: Executor, user_id: uuid.UUID, new: bytes) -> bytes:
    """The user's handle: ``new`` if they had none."""
    handle: bytes = await db.fetchval(ENSURE_HANDLE, user_id, new)
    return handle


async def insert(db: Executor, passkey: Passkey) -> bool:
    """False when the credential id is registered already (to anyone)."""
    found = await db.fetchval(
        INSERT,
        passkey.credential_id,
        passkey.user_id,
        passkey.public_key,
        passkey.sign_count,
        passkey.name,
        passkey.transports,
        passkey.backup_eligible,
        passkey.backed_up,
        passkey.aaguid,
        passkey.created_at,
    )
    return found is not None


async def of_user(db: Executor, user_id: uuid.UUID) -> list[Passkey]:
    return [Passkey(**dict(row)) for row in await db.fetch(OF_USER, user_id)]


async def by_credential(db: Executor, credential_id: bytes) -> tuple[Passkey, bytes] | None:
    """The passkey and its user's handle."""
    row = await db.fetchrow(BY_CREDENTIAL, credential_id)
    if row is None:
        return None
    fields = dict(row)
    handle = fields.pop("handle")
    return Passkey(**fields), handle


async def used(
    db: Executor, passkey: Passkey, sign_count: int, backed_up: bool, now: datetime
) -> bool:
    """Record a use; False if another use of the same counter value came first."""
    found = await db.fetchval(
        USED, passkey.credential_id, passkey.sign_count, sign_count, backed_up, now
    )
    return found is not None


async def remove(db: Executor, user_id: uuid.UUID, credential_id: bytes) -> str | None:
    """The removed passkey's name; None if the user has no such passkey."""
    name: str | None = await db.fetchval(DELETE, user_id, credential_id)
    return name


async def remove_of_user(db: Executor, user_id: uuid.UUID) -> None:
    await db.execute(DELETE_OF_USER, user_id)


async def spend_challenge(db: Executor, challenge_hash: bytes, expires_at: datetime) -> bool:
    """Whether the challenge was unspent (and is spent now)."""
    return await db.fetchval(SPEND_CHALLENGE, challenge_hash, expires_at) is not None
