"""SQL of ``totp_credentials`` and ``recovery_codes``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from idp.db import passkeys
from idp.db.pool import Executor

UPSERT_TOTP = """
INSERT INTO totp_credentials (user_id, secret_sealed, created_at) VALUES ($1, $2, $3)
ON CONFLICT (user_id) DO UPDATE
SET secret_sealed = EXCLUDED.secret_sealed, created_at = EXCLUDED.created_at,
    confirmed_at = NULL, last_step = NULL
WHERE totp_credentials.confirmed_at IS NULL
"""
SELECT_TOTP = """
SELECT secret_sealed, confirmed_at, last_step FROM totp_credentials WHERE user_id = $1
"""
CONFIRM_TOTP = """
UPDATE totp_credentials SET confirmed_at = $3, last_step = $2
WHERE user_id = $1 AND confirmed_at IS NULL
RETURNING user_id
"""
# RFC 6238 §5.2: a code is accepted once; with last_step, no code of that step or an earlier
# one is accepted again, whichever of two concurrent uses wins.
USE_TOTP_STEP = """
UPDATE totp_credentials SET last_step = $2
WHERE user_id = $1 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $2)
RETURNING user_id
"""
DELETE_TOTP = "DELETE FROM totp_credentials WHERE user_id = $1"
DELETE_RECOVERY = "DELETE FROM recovery_codes WHERE user_id = $1"
INSERT_RECOVERY = """
INSERT INTO recovery_codes (user_id, code_hash, created_at)
SELECT $1, unnest($2::bytea[]), $3
"""
USE_RECOVERY = """
UPDATE recovery_codes SET used_at = $3
WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL
RETURNING user_id
"""
COUNT_RECOVERY = """
SELECT count(*) FILTER (WHERE used_at IS NULL) AS unused, count(*) AS made
FROM recovery_codes WHERE user_id = $1
"""
HAS_SECOND_FACTOR = """
SELECT EXISTS (SELECT 1 FROM totp_credentials WHERE user_id = $1 AND confirmed_at IS NOT NULL)
    OR EXISTS (SELECT 1 FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL)
    OR EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1)
"""
FACTOR_KINDS = """
SELECT EXISTS (SELECT 1 FROM totp_credentials WHERE user_id = $1 AND confirmed_at IS NOT NULL)
           AS totp,
       EXISTS (SELECT 1 FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL) AS recovery,
       EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1) AS passkey
"""


@dataclass(frozen=True)
class StoredTotp:
    secret_sealed: bytes
    confirmed_at: datetime | None
    last_step: int | None


async def begin_totp(db: Executor, user_id: uuid.UUID, sealed: bytes, now: datetime) -> bool:
    """Store a new, unconfirmed secret; False when a confirmed one exists (remove it first)."""
    status: str = await db.execute(UPSERT_TOTP, user_id, sealed, now)
    return status != "INSERT 0 0"


async def totp_of(db: Executor, user_id: uuid.UUID) -> StoredTotp | None:
    row = await db.fetchrow(SELECT_TOTP, user_id)
    return None if row is None else StoredTotp(**dict(row))


async def confirm_totp(db: Executor, user_id: uuid.UUID, step: int, now: datetime) -> bool:
    return await db.fetchval(CONFIRM_TOTP, user_id, step, now) is not None


async def use_totp_step(db: Executor, user_id: uuid.UUID, step: int) -> bool:
    """Whether ``step`` is newer than every step used before (and is now the last used)."""
    return await db.fetchval(USE_TOTP_STEP, user_id, step) is not None


async def remove_totp(db: Executor, user_id: uuid.UUID) -> None:
    await db.execute(DELETE_TOTP, user_id)


async def replace_recovery_codes(
    db: Executor, user_id: uuid.UUID, hashes: list[bytes], now: datetime
) -> None:
    """Run it in a transaction: the old codes go, the new ones come, together."""
    await db.execute(DELETE_RECOVERY, user_id)
    await db.execute(INSERT_RECOVERY, user_id, hashes, now)


async def remove_recovery_codes(db: Executor, user_id: uuid.UUID) -> None:
    await db.execute(DELETE_RECOVERY, user_id)


async def remove_all(db: Executor, user_id: uuid.UUID) -> None:
    """Every second factor of the user: the app, the recovery codes, the passkeys (run it in a
    transaction)."""
    await remove_totp(db, user_id)
    await remove_recovery_codes(db, user_id)
    await passkeys.remove_of_user(db, user_id)


async def use_recovery_code(
    db: Executor, user_id: uuid.UUID, code_hash: bytes, now: datetime
) -> bool:
    return await db.fetchval(USE_RECOVERY, user_id, code_hash, now) is not None


async def recovery_counts(db: Executor, user_id: uuid.UUID) -> tuple[int, int]:
    """(unused, made) of the user's recovery codes."""
    row = await db.fetchrow(COUNT_RECOVERY, user_id)
    assert row is not None
    return row["unused"], row["made"]


@dataclass(frozen=True)
class FactorKinds:
    """Which second factors a user can give now."""

    totp: bool  # a confirmed authenticator app
    recovery: bool  # an unused recovery code
    passkey: bool

    @property
    def codes(self) -> bool:
        return self.totp or self.recovery

    @property
    def backs_up_codes(self) -> bool:
        """A factor recovery codes stand in for (idp.mfa.enrolment)."""
        return self.totp or self.passkey

    @property
    def any(self) -> bool:
        return self.codes or self.passkey


async def factor_kinds(db: Executor, user_id: uuid.UUID) -> FactorKinds:
    row = await db.fetchrow(FACTOR_KINDS, user_id)
    assert row is not None
    return FactorKinds(**dict(row))


async def has_second_factor(db: Executor, user_id: uuid.UUID) -> bool:
    """A confirmed authenticator app, an unused recovery code, or a passkey."""
    found: bool = await db.fetchval(HAS_SECOND_FACTOR, user_id)
    return found
