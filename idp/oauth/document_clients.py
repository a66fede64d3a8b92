"""Finding a client by id when its id may be a Client ID Metadata Document URL: /authorize and
the token endpoints look clients up here.

With IDP_CIMD off, or for an id that is not an https URL, it is the ClientRegistry. Otherwise
the stored row is the cached document: used until its ``metadata_expires_at`` (§4.4,
idp.oauth.metadata_document.cache_expiry), then fetched again and the row rewritten (NOTIFY
idp_clients: every process drops its copy). A row of another kind under that id (an operator's
client) or a disabled one is used as it is, never fetched. Concurrent requests for the same URL
share one fetch, and a refused document is refused again from memory for ``REFUSAL_TTL``: a
URL that fails cannot make idp fetch it on every request (draft §8.6: the authorization server
fetches what anyone names, so it bounds how often).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg

from idp.audit_trail import audited
from idp.clock import Clock
from idp.db import metadata_documents
from idp.db.clients import Client
from idp.oauth.client_registry import ClientRegistry
from idp.oauth.document_fetch import DocumentFetcher
from idp.oauth.metadata_document import (
    DocumentError,
    cache_expiry,
    check_client_id_url,
    client_from_document,
    is_document_url,
    parse_document,
)

REFUSAL_TTL = timedelta(minutes=1)
MAX_REFUSALS = 1024  # URLs remembered as refused; the oldest is forgotten first


class DocumentClients:
    def __init__(
        self,
        registry: ClientRegistry,
        pool: asyncpg.Pool,
        clock: Clock,
        fetcher: DocumentFetcher | None,
    ) -> None:
        self._registry = registry
        self._pool = pool
        self._clock = clock
        self._fetcher = fetcher  # None: IDP_CIMD is off
        self._fetching: dict[str, asyncio.Task[Client]] = {}
        self._refused: dict[str, tuple[datetime, DocumentError]] = {}

    async def find(self, client_id: str) -> Client | None:
        """The client, None if unknown, or DocumentError when its document cannot be used."""
        cached = await self._registry.find(client_id)
        if self._fetcher is None or not is_document_url(client_id):
            return cached
        if cached is not None and (
            cached.registration != "metadata_document"
            or cached.disabled
            or (
                cached.metadata_expires_at is not None
                and self._clock.now() < cached.metadata_expires_at
            )
        ):
            return cached
        check_client_id_url(client_id)
        refused = self._refused.get(client_id)
        if refused is not None:
            until, error = refused
            if self._clock.now() < until:
                raise error
            del self._refused[client_id]
        task = self._fetching.get(client_id)
        if task is None:
            task = asyncio.ensure_future(self._fetch(self._fetcher, client_id))
            self._fetching[client_id] = task
            task.add_done_callback(lambda done: self._done(client_id, done))
        return await asyncio.shield(task)

    def _done(self, client_id: str, task: asyncio.Task[Client]) -> None:
        self._fetching.pop(client_id, None)
        if not task.cancelled():
            task.exception()  # retrieved here too, should every waiter have gone away

    async def _fetch(self, fetcher: DocumentFetcher, url: str) -> Client:
        try:
            return await self._fetch_and_store(fetcher, url)
        except DocumentError as error:
            if len(self._refused) >= MAX_REFUSALS:
                del self._refused[next(iter(self._refused))]
            self._refused[url] = (self._clock.now() + REFUSAL_TTL, error)
            raise

    async def _fetch_and_store(self, fetcher: DocumentFetcher, url: str) -> Client:
        fetched = await fetcher.fetch(url)
        now = self._clock.now()
        client = client_from_document(
            url,
            parse_document(fetched.body),
            now=now,
            expires_at=cache_expiry(fetched.headers, now),
        )
        async with self._pool.acquire() as connection, audited(connection) as trail:
            stored = await metadata_documents.upsert(connection, client)
            if stored is None:  # an operator's client took the id meanwhile
                raise DocumentError("this client_id belongs to a registered client")
            await trail.record(
                now=now,
                actor=f"client:{url}",
                action="client.metadata_document_stored",
                subject=url,
                details={
                    "name": stored.name,
                    "redirect_uris": list(stored.redirect_uris),
                    "expires_at": stored.metadata_expires_at.isoformat()
                    if stored.metadata_expires_at
                    else None,
                },
            )
        self._registry.forget(url)  # this process reads the new row at once, not at its NOTIFY
        return stored
