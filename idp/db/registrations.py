"""SQL of dynamic registration: initial access tokens (RFC 7591 §3), the RFC 7592 update and
deletion of clients registered dynamically, and the ``resources`` registered clients may name
(RFC 8707)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from idp.db import clients
from idp.db.clients import Client
from idp.db.pool import Connection, Executor

INITIAL_COLUMNS = "id, created_at, expires_at, uses_left, created_by"  # never the digest
INSERT_INITIAL = f"""
INSERT INTO initial_access_tokens (token_hash, created_at, expires_at, uses_left, created_by)
VALUES ($1, $2, $3, $4, $5)
RETURNING {INITIAL_COLUMNS}
"""
# Newest first, after the (created_at, id) of the last one a page showed.
PAGE_INITIAL = f"""
SELECT {INITIAL_COLUMNS} FROM initial_access_tokens
WHERE $1::timestamptz IS NULL OR (created_at, id) < ($1, $2::uuid)
ORDER BY created_at DESC, id DESC
LIMIT $3
"""
SELECT_INITIAL = f"SELECT {INITIAL_COLUMNS} FROM initial_access_tokens WHERE id = $1"
DELETE_INITIAL = f"DELETE FROM initial_access_tokens WHERE id = $1 RETURNING {INITIAL_COLUMNS}"
# One use, once: concurrent registrations with a token of N uses cannot get past N.
USE_INITIAL = """
UPDATE initial_access_tokens SET uses_left = uses_left - 1
WHERE token_hash = $1 AND (uses_left IS NULL OR uses_left > 0) AND expires_at > $2
RETURNING token_hash
"""
UPDATE_DYNAMIC = f"""
UPDATE clients SET name = $2, redirect_uris = $3, grant_types = $4, scopes = $5,
    metadata = $6::jsonb, updated_at = $7
WHERE client_id = $1 AND registration = 'dynamic' AND NOT disabled
RETURNING {clients.COLUMNS}
"""
# RFC 7592 §2.3: the client stops working: disabled, its registration token gone, its refresh
# families revoked and the access tokens issued from them or from its codes deny-listed.
DELETE_DYNAMIC = """
WITH gone AS (
    UPDATE clients SET disabled = true, registration_token_hash = NULL, updated_at = $2
    WHERE client_id = $1 AND registration = 'dynamic' AND NOT disabled
    RETURNING client_id
), revoked AS (
    UPDATE refresh_families SET revoked_at = $2, revoked_reason = 'client deleted'
    WHERE client_id IN (SELECT client_id FROM gone) AND revoked_at IS NULL
    RETURNING id, access_jtis, jti_older_from, generation
), issued AS (
    SELECT idp_family_access_jtis(id, access_jtis, jti_older_from, generation) AS jti
    FROM revoked
    UNION
    SELECT unnest(issued_jtis) FROM authorization_codes
    WHERE client_id IN (SELECT client_id FROM gone) AND consumed_at > $2 - ($3 - $2)
), denied AS (
    INSERT INTO revoked_access_tokens (jti, expires_at)
    SELECT jti, $3 FROM issued
    ON CONFLICT (jti) DO NOTHING
    RETURNING jti
)
SELECT (SELECT count(*) FROM gone) AS clients, (SELECT count(*) FROM revoked) AS families,
    (SELECT count(*) FROM denied) AS access_tokens
"""

RESOURCE_COLUMNS = "id, url, created_at"
INSERT_RESOURCE = f"""
INSERT INTO resources (url, created_at) VALUES ($1, $2) ON CONFLICT (url) DO NOTHING
RETURNING {RESOURCE_COLUMNS}
"""
SELECT_RESOURCES = f"SELECT {RESOURCE_COLUMNS} FROM resources ORDER BY url"
# In URL order, after the URL the last page ended with.
PAGE_RESOURCES = f"""
SELECT {RESOURCE_COLUMNS} FROM resources WHERE $1::text IS NULL OR url > $1 ORDER BY url LIMIT $2
"""
SELECT_RESOURCE = f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE id = $1"
DELETE_RESOURCE_BY_URL = f"DELETE FROM resources WHERE url = $1 RETURNING {RESOURCE_COLUMNS}"
DELETE_RESOURCE_BY_ID = f"DELETE FROM resources WHERE id = $1 RETURNING {RESOURCE_COLUMNS}"
RESOURCES_CHANNEL = "idp_resources"
NOTIFY_RESOURCES = f"SELECT pg_notify('{RESOURCES_CHANNEL}', '')"


@dataclass(frozen=True)
class InitialTokenRecord:
    """What is kept of an initial access token besides its digest."""

    id: UUID
    created_at: datetime
    expires_at: datetime
    uses_left: int | None  # None: any number until it expires
    created_by: str


def _initial(row: asyncpg.Record) -> InitialTokenRecord:
    return InitialTokenRecord(
        row["id"], row["created_at"], row["expires_at"], row["uses_left"], row["created_by"]
    )


async def insert_initial_token(
    db: Executor,
    token_hash: bytes,
    *,
    now: datetime,
    expires_at: datetime,
    uses: int | None,
    created_by: str,
) -> InitialTokenRecord:
    row = await db.fetchrow(INSERT_INITIAL, token_hash, now, expires_at, uses, created_by)
    assert row is not None
    return _initial(row)


async def initial_tokens_page(
    db: Executor, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[InitialTokenRecord]:
    at, key = after if after is not None else (None, None)
    return [_initial(row) for row in await db.fetch(PAGE_INITIAL, at, key, limit)]


async def find_initial_token(db: Executor, token_id: UUID) -> InitialTokenRecord | None:
    row = await db.fetchrow(SELECT_INITIAL, token_id)
    return None if row is None else _initial(row)


async def delete_initial_token(db: Executor, token_id: UUID) -> InitialTokenRecord | None:
    row = await db.fetchrow(DELETE_INITIAL, token_id)
    return None if row is None else _initial(row)


async def use_initial_token(db: Executor, token_hash: bytes, now: datetime) -> bool:
    """Whether the token was live and had a use left, which this call took."""
    return await db.fetchval(USE_INITIAL, token_hash, now) is not None


async def update_dynamic(db: Executor, client: Client, now: datetime) -> Client | None:
    """Replace a dynamic client's metadata; None if it is gone or was never dynamic."""
    row = await db.fetchrow(UPDATE_DYNAMIC, *clients.self_described(client), now)
    return await clients.announced(db, row)


@dataclass(frozen=True)
class Deleted:
    refresh_families: int
    access_tokens: int


async def delete_dynamic(
    connection: Connection, client_id: str, now: datetime, deny_until: datetime
) -> Deleted | None:
    """Disable a dynamic client and everything it holds, in the caller's transaction; None if
    there was no such live client."""
    row = await connection.fetchrow(DELETE_DYNAMIC, client_id, now, deny_until)
    assert row is not None
    if not row["clients"]:
        return None
    await connection.execute(clients.NOTIFY, client_id)
    return Deleted(row["families"], row["access_tokens"])


@dataclass(frozen=True)
class Resource:
    id: UUID
    url: str
    created_at: datetime


def _resource(row: asyncpg.Record) -> Resource:
    return Resource(row["id"], row["url"], row["created_at"])


async def add_resource(db: Executor, url: str, now: datetime) -> Resource | None:
    """None when it was there already. Every process's registry hears of it at commit."""
    row = await db.fetchrow(INSERT_RESOURCE, url, now)
    if row is None:
        return None
    await db.execute(NOTIFY_RESOURCES)
    return _resource(row)


async def remove_resource(
    db: Executor, *, url: str | None = None, resource_id: UUID | None = None
) -> Resource | None:
    """Remove the resource with that URL or that id (exactly one given); None when there is
    none. Every process's registry hears of it at commit."""
    assert (url is None) != (resource_id is None)
    if url is not None:
        row = await db.fetchrow(DELETE_RESOURCE_BY_URL, url)
    else:
        row = await db.fetchrow(DELETE_RESOURCE_BY_ID, resource_id)
    if row is None:
        return None
    await db.execute(NOTIFY_RESOURCES)
    return _resource(row)


async def find_resource(db: Executor, resource_id: UUID) -> Resource | None:
    row = await db.fetchrow(SELECT_RESOURCE, resource_id)
    return None if row is None else _resource(row)


async def resources_page(db: Executor, *, after: str | None, limit: int) -> list[Resource]:
    return [_resource(row) for row in await db.fetch(PAGE_RESOURCES, after, limit)]


async def all_resources(db: Executor) -> list[Resource]:
    return [_resource(row) for row in await db.fetch(SELECT_RESOURCES)]
