"""SQL of the ``clients`` table and its row mapping."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from idp.db.pool import Executor

COLUMNS = """client_id, name, secret_hash, redirect_uris, grant_types, scopes, audiences,
    post_logout_redirect_uris, first_party, access_token_ttl, refresh_token_ttl, disabled,
    created_at, introspect_audiences, require_mfa, admin, registration, metadata,
    registration_token_hash, metadata_expires_at, updated_at"""

INSERT = f"""
INSERT INTO clients (client_id, name, redirect_uris, grant_types, scopes, audiences,
    post_logout_redirect_uris, first_party, access_token_ttl, refresh_token_ttl,
    introspect_audiences, require_mfa, secret_hash, created_at, admin, registration, metadata,
    registration_token_hash, metadata_expires_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::jsonb, $18,
    $19, $14)
RETURNING {COLUMNS}
"""
SELECT_BY_ID = f"SELECT {COLUMNS} FROM clients WHERE client_id = $1"
SELECT_ALL = f"SELECT {COLUMNS} FROM clients ORDER BY created_at, client_id"
DISABLE = "UPDATE clients SET disabled = true WHERE client_id = $1 RETURNING client_id"
NOTIFY = "SELECT pg_notify('idp_clients', $1)"

# operator: the CLI or the management API; dynamic: RFC 7591; metadata_document: fetched from
# its client_id URL (Client ID Metadata Documents).
Registration = Literal["operator", "dynamic", "metadata_document"]


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    secret_hash: bytes | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    first_party: bool
    access_token_ttl: timedelta | None
    refresh_token_ttl: timedelta | None
    disabled: bool
    created_at: datetime
    # The audiences of the resource servers it speaks for: it may introspect access tokens
    # meant for them (RFC 7662 §2.1), not only its own.
    introspect_audiences: tuple[str, ...] = ()
    # Every sign-in for it must reach urn:idp:acr:mfa (idp.oauth.authorize.required_acr).
    require_mfa: bool = False
    # May get tokens for the management API ({issuer}/admin, idp:admin scopes).
    admin: bool = False
    registration: Registration = "operator"
    # RFC 7591 §2 metadata beyond the columns (client_uri, logo_uri, contacts, ...).
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    registration_token_hash: bytes | None = field(default=None, repr=False)
    metadata_expires_at: datetime | None = None
    updated_at: datetime | None = None  # None before it is stored: created_at then

    @property
    def public(self) -> bool:
        return self.secret_hash is None

    @property
    def unverified(self) -> bool:
        """Registered by a program, not an operator: the consent page says so and is never
        skipped."""
        return self.registration != "operator"


def _seconds(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def _client(row: asyncpg.Record) -> Client:
    return Client(
        client_id=row["client_id"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        redirect_uris=tuple(row["redirect_uris"]),
        grant_types=tuple(row["grant_types"]),
        scopes=tuple(row["scopes"]),
        audiences=tuple(row["audiences"]),
        post_logout_redirect_uris=tuple(row["post_logout_redirect_uris"]),
        first_party=row["first_party"],
        access_token_ttl=_seconds(row["access_token_ttl"]),
        refresh_token_ttl=_seconds(row["refresh_token_ttl"]),
        disabled=row["disabled"],
        created_at=row["created_at"],
        introspect_audiences=tuple(row["introspect_audiences"]),
        require_mfa=row["require_mfa"],
        admin=row["admin"],
        registration=row["registration"],
        metadata=json.loads(row["metadata"]),
        registration_token_hash=row["registration_token_hash"],
        metadata_expires_at=row["metadata_expires_at"],
        updated_at=row["updated_at"],
    )


def _int_seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def _changeable(client: Client) -> tuple[Any, ...]:
    """$1 to $12 of INSERT and UPDATE: the id, then the fields an update may change."""
    return (
        client.client_id,
        client.name,
        list(client.redirect_uris),
        list(client.grant_types),
        list(client.scopes),
        list(client.audiences),
        list(client.post_logout_redirect_uris),
        client.first_party,
        _int_seconds(client.access_token_ttl),
        _int_seconds(client.refresh_token_ttl),
        list(client.introspect_audiences),
        client.require_mfa,
    )


def self_described(client: Client) -> tuple[Any, ...]:
    """$1 to $6 of the statements that store what a client says of itself (RFC 7591 §2
    metadata: a dynamic registration, a Client ID Metadata Document): its id, name, redirect
    URIs, grant types, scopes, and the metadata as JSON."""
    return (
        client.client_id,
        client.name,
        list(client.redirect_uris),
        list(client.grant_types),
        list(client.scopes),
        json.dumps(client.metadata),
    )


async def insert(db: Executor, client: Client) -> Client:
    """Insert and announce it: every process's set of allowed CORS origins changes at commit."""
    row = await db.fetchrow(
        INSERT,
        *_changeable(client),
        client.secret_hash,
        client.created_at,
        client.admin,
        client.registration,
        json.dumps(client.metadata),
        client.registration_token_hash,
        client.metadata_expires_at,
    )
    assert row is not None
    await db.execute(NOTIFY, client.client_id)
    return _client(row)


async def by_id(db: Executor, client_id: str) -> Client | None:
    row = await db.fetchrow(SELECT_BY_ID, client_id)
    return None if row is None else _client(row)


async def all_clients(db: Executor) -> list[Client]:
    return [_client(row) for row in await db.fetch(SELECT_ALL)]


async def disable(db: Executor, client_id: str) -> bool:
    """Disable and announce it, so every process drops the client from its cache at commit."""
    found = await db.fetchval(DISABLE, client_id) is not None
    if found:
        await db.execute(NOTIFY, client_id)
    return found


# -- the management service layer (idp.admin.clients) ----------------------------------------
# Keyset pages by (created_at, client_id), the index clients_created (migration 0021): page
# 1,000 costs what page 1 does.
SELECT_PAGE = f"""
SELECT {COLUMNS} FROM clients
WHERE ($1::timestamptz IS NULL OR (created_at, client_id) > ($1, $2))
ORDER BY created_at, client_id
LIMIT $3
"""
SELECT_FOR_UPDATE = f"SELECT {COLUMNS} FROM clients WHERE client_id = $1 FOR UPDATE"
UPDATE = f"""
UPDATE clients SET name = $2, redirect_uris = $3, grant_types = $4, scopes = $5, audiences = $6,
    post_logout_redirect_uris = $7, first_party = $8, access_token_ttl = $9,
    refresh_token_ttl = $10, introspect_audiences = $11, require_mfa = $12, updated_at = $13
WHERE client_id = $1
RETURNING {COLUMNS}
"""
SET_SECRET = f"""
UPDATE clients SET secret_hash = $2, updated_at = $3
WHERE client_id = $1 AND secret_hash IS NOT NULL
RETURNING {COLUMNS}
"""
SET_DISABLED = f"""
UPDATE clients SET disabled = $2, updated_at = $3
WHERE client_id = $1 AND disabled <> $2
RETURNING {COLUMNS}
"""
# Everything the client holds goes with it, in one statement: its refresh families are revoked
# and the access tokens issued from them (or from its codes, to a client without refresh
# tokens) deny-listed until $3, as revoking a user's grants does (idp.db.grants); then its codes,
# pending requests, consents and families are deleted, and the client itself.
DELETE_CASCADE = """
WITH issued AS (
    SELECT idp_family_access_jtis(id, access_jtis, jti_older_from, generation) AS jti
    FROM refresh_families WHERE client_id = $1 AND revoked_at IS NULL
    UNION
    SELECT unnest(issued_jtis) FROM authorization_codes
    WHERE client_id = $1 AND consumed_at > $2::timestamptz - ($3::timestamptz - $2)
), denied AS (
    INSERT INTO revoked_access_tokens (jti, expires_at)
    SELECT jti, $3 FROM issued
    ON CONFLICT (jti) DO NOTHING
    RETURNING jti
), codes AS (
    DELETE FROM authorization_codes WHERE client_id = $1 RETURNING 1
), requests AS (
    DELETE FROM authorization_requests WHERE client_id = $1 RETURNING 1
), consents AS (
    DELETE FROM consents WHERE client_id = $1 RETURNING 1
), families AS (
    DELETE FROM refresh_families WHERE client_id = $1 RETURNING revoked_at
)
SELECT (SELECT count(*) FROM families WHERE revoked_at IS NULL) AS refresh_families,
    (SELECT count(*) FROM consents) AS consents,
    (SELECT count(*) FROM denied) AS access_tokens
"""
DELETE = "DELETE FROM clients WHERE client_id = $1 RETURNING client_id"


@dataclass(frozen=True)
class Deleted:
    """What went with a deleted client."""

    refresh_families: int  # live ones, revoked
    consents: int
    access_tokens: int  # newly deny-listed


async def page(db: Executor, *, after: tuple[datetime, str] | None, limit: int) -> list[Client]:
    """Clients in the order they were created, ``limit`` at a time, after the key ``after``."""
    created_at, client_id = after if after is not None else (None, "")
    rows = await db.fetch(SELECT_PAGE, created_at, client_id, limit)
    return [_client(row) for row in rows]


async def by_id_for_update(db: Executor, client_id: str) -> Client | None:
    """The client, locked until the caller's transaction ends: a check of its state (If-Match)
    holds until the change is written."""
    row = await db.fetchrow(SELECT_FOR_UPDATE, client_id)
    return None if row is None else _client(row)


async def announced(db: Executor, row: asyncpg.Record | None) -> Client | None:
    """The changed row, announced (every process's ClientRegistry drops it at commit)."""
    if row is None:
        return None
    client = _client(row)
    await db.execute(NOTIFY, client.client_id)
    return client


async def update(db: Executor, client: Client, now: datetime) -> Client | None:
    """Store the changeable fields of ``client``; None if it no longer exists."""
    row = await db.fetchrow(UPDATE, *_changeable(client), now)
    return await announced(db, row)


async def set_secret(
    db: Executor, client_id: str, secret_hash: bytes, now: datetime
) -> Client | None:
    """Replace a confidential client's secret digest; None if there is no such client or it is
    public (it has no secret to replace)."""
    return await announced(db, await db.fetchrow(SET_SECRET, client_id, secret_hash, now))


async def set_disabled(
    db: Executor, client_id: str, disabled: bool, now: datetime
) -> Client | None:
    """Disable or enable; None if there is no such client or it is so already."""
    return await announced(db, await db.fetchrow(SET_DISABLED, client_id, disabled, now))


async def delete(
    db: Executor, client_id: str, now: datetime, deny_until: datetime
) -> Deleted | None:
    """Delete the client and all it holds (run it in a transaction); None if there is none."""
    row = await db.fetchrow(DELETE_CASCADE, client_id, now, deny_until)
    assert row is not None
    if await db.fetchval(DELETE, client_id) is None:
        return None
    await db.execute(NOTIFY, client_id)
    return Deleted(row["refresh_families"], row["consents"], row["access_tokens"])
