"""SQL of the ``signing_keys`` table and its row mapping."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

import asyncpg

from idp.db.pool import Connection, Executor
from idp.settings import SigningAlg

KeyState = Literal["pending", "active", "retiring", "retired", "revoked"]
PUBLISHED_STATES: tuple[KeyState, ...] = ("pending", "active", "retiring")

_COLUMNS = "kid, alg, state, created_at, activated_at, last_signed_at"

SELECT_PUBLISHED = f"""
SELECT {_COLUMNS}, public_jwk, private_key_enc
FROM signing_keys
WHERE state IN ('pending', 'active', 'retiring')
ORDER BY created_at, kid
"""
SELECT_ALL = f"""
SELECT {_COLUMNS}, retired_at, revoked_at, revoked_reason, private_key_enc
FROM signing_keys
ORDER BY created_at, kid
"""
SELECT_PUBLIC_JWK = "SELECT public_jwk, state FROM signing_keys WHERE kid = $1"
INSERT = """
INSERT INTO signing_keys (kid, alg, state, public_jwk, private_key_enc, created_at, activated_at)
VALUES ($1, $2, $3, $4::jsonb, $5, $6, CASE WHEN $3 = 'active' THEN $6::timestamptz END)
"""
PROMOTE = """
UPDATE signing_keys SET state = 'active', activated_at = $2
WHERE kid = $1 AND state = 'pending'
RETURNING kid
"""
DEMOTE = """
UPDATE signing_keys SET state = 'retiring', last_signed_at = $2
WHERE kid = $1 AND state = 'active'
RETURNING kid
"""
# Retiring erases the private half; so does revoking (the CHECK constraint insists).
RETIRE = """
UPDATE signing_keys SET state = 'retired', retired_at = $2, private_key_enc = NULL
WHERE kid = $1 AND state IN ('pending', 'retiring')
RETURNING kid
"""
REVOKE = """
UPDATE signing_keys
SET state = 'revoked', revoked_at = $2, revoked_reason = $3, private_key_enc = NULL,
    last_signed_at = CASE WHEN state = 'active' THEN $2 ELSE last_signed_at END
WHERE kid = $1 AND state IN ('pending', 'active', 'retiring')
RETURNING kid
"""
NOTIFY = "SELECT pg_notify('idp_keys', $1)"


@dataclass(frozen=True)
class KeyRecord:
    """What the lifecycle (idp.keys.lifecycle) needs to know of a signing key: no key material."""

    kid: str
    alg: SigningAlg
    state: KeyState
    created_at: datetime
    activated_at: datetime | None = None
    last_signed_at: datetime | None = None


@dataclass(frozen=True)
class PublishedKey:
    """A published key as the keyring needs it."""

    record: KeyRecord
    public_jwk: dict[str, Any]
    private_key_enc: bytes


@dataclass(frozen=True)
class KeyListing:
    """A key of any state, for ``idp keys list``."""

    record: KeyRecord
    retired_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None
    private_key_enc: bytes | None


def _record(row: asyncpg.Record) -> KeyRecord:
    return KeyRecord(
        kid=row["kid"],
        alg=cast(SigningAlg, row["alg"]),
        state=cast(KeyState, row["state"]),
        created_at=row["created_at"],
        activated_at=row["activated_at"],
        last_signed_at=row["last_signed_at"],
    )


async def fetch_published(connection: Executor) -> list[PublishedKey]:
    rows = await connection.fetch(SELECT_PUBLISHED)
    return [
        PublishedKey(
            record=_record(row),
            public_jwk=json.loads(row["public_jwk"]),
            private_key_enc=row["private_key_enc"],
        )
        for row in rows
    ]


async def fetch_all(connection: Executor) -> list[KeyListing]:
    rows = await connection.fetch(SELECT_ALL)
    return [
        KeyListing(
            record=_record(row),
            retired_at=row["retired_at"],
            revoked_at=row["revoked_at"],
            revoked_reason=row["revoked_reason"],
            private_key_enc=row["private_key_enc"],
        )
        for row in rows
    ]


async def fetch_public_jwk(
    connection: Executor, kid: str
) -> tuple[dict[str, Any], KeyState] | None:
    row = await connection.fetchrow(SELECT_PUBLIC_JWK, kid)
    if row is None:
        return None
    return json.loads(row["public_jwk"]), cast(KeyState, row["state"])


async def insert(
    connection: Connection,
    *,
    kid: str,
    alg: SigningAlg,
    state: KeyState,
    public_jwk: dict[str, Any],
    private_key_enc: bytes,
    now: datetime,
) -> None:
    await connection.execute(INSERT, kid, alg, state, json.dumps(public_jwk), private_key_enc, now)


async def update_state(connection: Connection, sql: str, *args: object) -> bool:
    """Run PROMOTE, DEMOTE, RETIRE or REVOKE; False if the key was not in the expected state."""
    return await connection.fetchval(sql, *args) is not None
