"""The wiring: ``create_app(settings)`` builds the Starlette app; its lifespan opens the pool,
makes sure a signing key exists, loads the keyring and starts the key scheduler, the janitor and
the mail sender."""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware

from idp.background import Background
from idp.clock import Clock, SystemClock
from idp.db.listener import Listener
from idp.db.pool import create_pool
from idp.janitor import JanitorScheduler
from idp.keys.keyring import Keyring
from idp.keys.manager import KeyManager
from idp.keys.scheduler import KeyScheduler
from idp.mail.outbox import Mailing
from idp.mail.sender import MailSender
from idp.metrics import Exposition
from idp.mfa.passkeys import Passkeys
from idp.oauth.client_registry import ClientRegistry
from idp.oauth.context import TokenContext
from idp.oauth.deny_list import DenyList
from idp.oauth.discovery import provider_metadata
from idp.oauth.document_clients import DocumentClients
from idp.oauth.document_fetch import DocumentFetcher
from idp.oauth.resource_registry import ResourceRegistry
from idp.oauth.user_cache import UserCache
from idp.passwords import Passwords
from idp.settings import Settings
from idp.web.admin.routes import admin_routes
from idp.web.errors import EXCEPTION_HANDLERS
from idp.web.in_memory import InMemoryRoutes
from idp.web.observe import RequestObserver, flushing
from idp.web.router import StaticPathRouter
from idp.web.routes import demo_routes, routes
from idp.web.security import Cookies
from idp.web.state import AppState


def settle_heap() -> None:
    """Move everything loaded at start-up (modules, templates, keys, pydantic's schemas: all of
    it lives as long as the process) out of the garbage collector's way (``gc.freeze``), so that
    a full collection scans only what requests made. Full collections over the whole heap were
    the users page's tail: p99 54 ms without, 13-22 ms with (bench/results/admin.md)."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    run_scheduler: bool = True,
    middleware: Sequence[Middleware] = (),
    in_memory_first: bool = True,
    documents: DocumentFetcher | None = None,
    freeze_heap: bool = False,
) -> Starlette:
    """``settings`` must be resolved (``idp.runtime.resolve``): database URL and KEK set.

    Every request goes through Starlette's middleware stack: the request observer, then
    ``middleware``, then the router over ``idp.web.routes`` (the whole URL map); GETs of the
    routes answered from memory (JWKS, discovery) are answered by ``InMemoryRoutes``, declared
    last, unless ``in_memory_first`` is False (``idp.web.in_memory``).

    ``documents`` fetches Client ID Metadata Documents when IDP_CIMD is on (the caller closes
    it); by default the lifespan makes one from the settings (``DocumentFetcher.of``).

    ``freeze_heap`` (``idp serve``'s processes): once started, ``settle_heap``."""
    database_url, kek = settings.database_url, settings.key_encryption_key
    if database_url is None or kek is None:
        raise ValueError("create_app needs resolved settings (database_url or KEK is None)")
    app_clock = clock or SystemClock()
    discovery_body = json.dumps(provider_metadata(settings), separators=(",", ":")).encode()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[AppState]:
        async with contextlib.AsyncExitStack() as resources:  # closed in reverse, each once
            await resources.enter_async_context(flushing())
            pool = await create_pool(
                database_url, statement_timeout=settings.database_timeout.total_seconds()
            )
            resources.push_async_callback(pool.close)
            keyring = Keyring(settings, app_clock)
            manager = KeyManager(pool, settings, app_clock)
            clients = ClientRegistry(pool)
            fetcher = documents
            if fetcher is None and settings.cimd:
                fetcher = DocumentFetcher.of(settings)
                resources.push_async_callback(fetcher.aclose)
            await manager.tick(actor="startup")  # a fresh database gets its first keys
            await keyring.start(pool)
            resources.push_async_callback(keyring.stop)
            listener = Listener(database_url)
            listener.subscribe(keyring.subscription())
            listener.subscribe(clients.subscription())
            known_resources = ResourceRegistry(pool, settings.resources)
            listener.subscribe(known_resources.subscription())
            deny_list = DenyList(pool, app_clock, listener)
            listener.subscribe(deny_list.subscription())
            user_cache = UserCache(pool, listener)
            listener.subscribe(user_cache.subscription())
            mailing = Mailing.of(settings)
            mail_sender = MailSender(pool, app_clock, settings, mailing.outbox.seal)
            listener.subscribe(mail_sender.subscription())
            await deny_list.start(reload_every=settings.key_check_interval.total_seconds())
            resources.push_async_callback(deny_list.stop)
            await listener.start()
            resources.push_async_callback(listener.stop)
            mail_sender.start()
            resources.push_async_callback(mail_sender.stop)
            passwords = Passwords(settings.argon2_profile)
            resources.callback(passwords.close)
            background = Background()
            resources.push_async_callback(background.close)  # before the pool closes
            if run_scheduler:
                scheduler = KeyScheduler(manager, settings)
                scheduler.start()
                resources.callback(scheduler.shutdown)
                janitor = JanitorScheduler(pool, app_clock, settings)
                janitor.start()
                resources.callback(janitor.shutdown)
            if freeze_heap:
                settle_heap()
            yield {
                "settings": settings,
                "clock": app_clock,
                "pool": pool,
                "keyring": keyring,
                "keys": manager,
                "discovery_body": discovery_body,
                "clients": clients,
                "client_documents": DocumentClients.of(settings, clients, pool, app_clock, fetcher),
                "listener": listener,
                "passwords": passwords,
                "cookies": Cookies(settings),
                "token_context": TokenContext(
                    settings,
                    app_clock,
                    pool,
                    keyring.sign,
                    keyring.verification_keys,
                    deny_list,
                    user_cache,
                    known_resources,
                ),
                "metrics": Exposition(keyring, pool, app_clock.now),
                "mailing": mailing,
                "mail_sender": mail_sender,
                "background": background,
                "passkeys": Passkeys.of(settings),
            }

    router = StaticPathRouter(
        [
            *routes,
            *(demo_routes if settings.demo else []),
            *(admin_routes if settings.admin_api else []),
        ],
        lifespan=lifespan,
    )
    app = Starlette(
        middleware=[
            Middleware(RequestObserver, routes=router.routes),
            *middleware,
            *([Middleware(InMemoryRoutes, routes=router.routes)] if in_memory_first else []),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.router = router
    return app
