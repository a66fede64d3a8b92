"""Clients known by a Client ID Metadata Document (idp.oauth.metadata_document): their row is
the cached document, written at the first fetch and rewritten when a fetch after its expiry
brings it back."""

from __future__ import annotations

from idp.db import clients
from idp.db.clients import Client
from idp.db.pool import Executor

# A row of another kind under the same id (an operator's client) is never overwritten, and an
# operator's `disabled` stays as it is.
UPSERT = """
INSERT INTO clients (client_id, name, secret_hash, redirect_uris, grant_types, scopes, audiences,
    post_logout_redirect_uris, first_party, created_at, registration, metadata,
    metadata_expires_at, updated_at)
VALUES ($1, $2, NULL, $3, $4, $5, '{}', '{}', false, $7, 'metadata_document', $6::jsonb, $8, $7)
ON CONFLICT (client_id) DO UPDATE SET
    name = EXCLUDED.name,
    redirect_uris = EXCLUDED.redirect_uris,
    grant_types = EXCLUDED.grant_types,
    scopes = EXCLUDED.scopes,
    metadata = EXCLUDED.metadata,
    metadata_expires_at = EXCLUDED.metadata_expires_at,
    updated_at = EXCLUDED.updated_at
WHERE clients.registration = 'metadata_document'
RETURNING client_id
"""


async def upsert(db: Executor, client: Client) -> Client | None:
    """Store the document's client (``client.created_at`` is now) and announce it, so every
    process's ClientRegistry drops what it cached; None if the id is another kind of client's."""
    assert client.registration == "metadata_document"
    assert client.metadata_expires_at is not None
    stored = await db.fetchval(
        UPSERT,
        *clients.self_described(client),
        client.created_at,
        client.metadata_expires_at,
    )
    if stored is None:
        return None
    await db.execute(clients.NOTIFY, client.client_id)
    return await clients.by_id(db, client.client_id)
