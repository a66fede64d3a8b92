"""SQL of dynamic registration: initial access tokens (RFC 7591 §3), the RFC 7592 update and
deletion of clients registered dynamically, and the ``resources`` registered clients may name
(RFC 8707)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from idp.db import clients
from idp.db.clients import Client
from idp.db.pool import Connection, Executor

INSERT_INITIAL = """
INSERT INTO initial_access_tokens (token_hash, created_at, expires_at, uses_left, created_by)
VALUES ($1, $2, $3, $4, $5)
"""
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

INSERT_RESOURCE = """
INSERT INTO resources (url, created_at) VALUES ($1, $2) ON CONFLICT (url) DO NOTHING
RETURNING url
"""
SELECT_RESOURCES = "SELECT url, created_at FROM resources ORDER BY url"
DELETE_RESOURCE = "DELETE FROM resources WHERE url = $1 RETURNING url"
RESOURCES_CHANNEL = "idp_resources"
NOTIFY_RESOURCES = f"SELECT pg_notify('{RESOURCES_CHANNEL}', '')"


async def insert_initial_token(
    db: Executor,
    token_hash: bytes,
    *,
    now: datetime,
    expires_at: datetime,
    uses: int | None,
    created_by: str,
) -> None:
    await db.execute(INSERT_INITIAL, token_hash, now, expires_at, uses, created_by)


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
    url: str
    created_at: datetime


async def add_resource(db: Executor, url: str, now: datetime) -> bool:
    """False when it was there already."""
    added = await db.fetchval(INSERT_RESOURCE, url, now) is not None
    if added:
        await db.execute(NOTIFY_RESOURCES)
    return added


async def remove_resource(db: Executor, url: str) -> bool:
    removed = await db.fetchval(DELETE_RESOURCE, url) is not None
    if removed:
        await db.execute(NOTIFY_RESOURCES)
    return removed


async def all_resources(db: Executor) -> list[Resource]:
    return [Resource(row["url"], row["created_at"]) for row in await db.fetch(SELECT_RESOURCES)]
