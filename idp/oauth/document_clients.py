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

Nor can anyone make idp fetch many distinct URLs (idp as a scanner or a request amplifier):
each client IP may cause ``fetches_per_minute`` fetches (the database's rate_limits counters of
idp.accounts.rate_limit, so across processes), and a process makes at most
``concurrent_fetches`` at once. Either bound refuses with TooManyFetchesError before any
fetch, and that refusal is not remembered for the URL: it is the asker's, not the document's.
Joining a fetch already under way, or a refusal remembered, costs no fetch and is not counted.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg

from idp.accounts.rate_limit import Limit, allowed
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
from idp.settings import Settings

REFUSAL_TTL = timedelta(minutes=1)
MAX_REFUSALS = 1024  # URLs remembered as refused; the oldest is forgotten first
FETCH_WINDOW = timedelta(minutes=1)
BUSY_RETRY_AFTER = 5  # seconds: a fetch under way ends within FETCH_TIMEOUT_SECONDS


class TooManyFetchesError(Exception):
    """No fetch now: this IP caused too many, or the process has as many under way as it
    allows. RFC 6585 §4: a 429 with Retry-After."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DocumentClients:
    def __init__(
        self,
        registry: ClientRegistry,
        pool: asyncpg.Pool,
        clock: Clock,
        fetcher: DocumentFetcher | None,
        *,
        fetches_per_minute: int = 10,
        concurrent_fetches: int = 8,
    ) -> None:
        self._registry = registry
        self._pool = pool
        self._clock = clock
        self._fetcher = fetcher  # None: IDP_CIMD is off
        self._fetching: dict[str, asyncio.Task[Client]] = {}
        self._refused: dict[str, tuple[datetime, DocumentError]] = {}
        self._limit = Limit("cimd-fetch-ip", fetches_per_minute, FETCH_WINDOW)
        self._concurrent_fetches = concurrent_fetches

    @classmethod
    def of(
        cls,
        settings: Settings,
        registry: ClientRegistry,
        pool: asyncpg.Pool,
        clock: Clock,
        fetcher: DocumentFetcher | None,
    ) -> DocumentClients:
        return cls(
            registry,
            pool,
            clock,
            fetcher if settings.cimd else None,
            fetches_per_minute=settings.cimd_fetches_per_minute,
            concurrent_fetches=settings.cimd_concurrent_fetches,
        )

    async def find(self, client_id: str, *, ip: str) -> Client | None:
        """The client, None if unknown, or DocumentError when its document cannot be used;
        TooManyFetchesError when it would take a fetch that ``ip`` may not cause now."""
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
            self._check_not_busy()
            if not await allowed(self._pool, self._clock.now(), (self._limit, ip)):
                raise TooManyFetchesError(
                    "Too many different applications were asked for from your network "
                    "address in the last minute; try again in a minute.",
                    int(FETCH_WINDOW.total_seconds()),
                )
            task = self._fetching.get(client_id)  # started by another request meanwhile
        if task is None:
            self._check_not_busy()  # nothing awaited from here to the fetch's start
            task = asyncio.ensure_future(self._fetch(self._fetcher, client_id))
            self._fetching[client_id] = task
            task.add_done_callback(lambda done: self._done(client_id, done))
        return await asyncio.shield(task)

    def _check_not_busy(self) -> None:
        """Draft §6.5: this process fetches at most ``concurrent_fetches`` documents at once
        (each task in ``_fetching`` is one fetch under way)."""
        if len(self._fetching) >= self._concurrent_fetches:
            raise TooManyFetchesError(
                "Too many applications' metadata documents are being fetched right now; "
                "try again in a few seconds.",
                BUSY_RETRY_AFTER,
            )

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
