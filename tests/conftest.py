"""Shared fixtures: a real PostgreSQL (embedded, or IDP_TEST_DATABASE_URL), migrated once per
session and truncated between tests; settings built directly; a frozen clock; the app driven
through its lifespan over ASGI."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import tempfile
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import asyncpg
import httpx
import pytest
import uvicorn
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from idp.app import create_app
from idp.clock import Clock, FrozenClock, SystemClock
from idp.db.migrate import migrate
from idp.db.pool import create_pool
from idp.keys.crypto import b64url
from idp.oauth.document_fetch import DocumentFetcher
from idp.server import options as server_options
from idp.settings import Settings
from idp.web.state import AppState
from tests.factories import environ_without_idp
from tests.processes import Processes, running
from tests.smtp import SmtpSink

# Every table but the migrations ledger, found in the schema: new tables need no edit here.
ALL_TABLES = """
SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables
WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
"""


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = os.environ.get("IDP_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        directory = tempfile.mkdtemp(prefix="idp-test-pg-")
        server = pgserver.get_server(Path(directory) / "pg", cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
async def migrated(database_url: str) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        await migrate(connection)
    finally:
        await connection.close()
    return database_url


@pytest.fixture
async def pool(migrated: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on an empty database (TRUNCATE, not rollback: races in tests are real)."""
    pool = await create_pool(migrated, min_size=1, max_size=10)
    # Its own bound: emptying every table waits for each lock and can outlast the pool's 5 s
    # on a loaded machine (seen once with the whole suite beside a browser test run).
    tables = await pool.fetchval(ALL_TABLES)
    await pool.execute(f"TRUNCATE {tables} RESTART IDENTITY", timeout=60)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def real_time(clock: FrozenClock) -> None:
    """The frozen clock set to now, for tests whose tokens meet the system clock (other processes,
    client libraries, the CLI); a module opts in with ``pytest.mark.usefixtures("real_time")``."""
    clock.set(datetime.now(UTC))


@pytest.fixture
def kek() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def settings(migrated: str, kek: bytes) -> Settings:
    return Settings(
        issuer="http://idp.test",
        database_url=migrated,
        key_encryption_key=kek,
        key_check_interval=timedelta(seconds=60),
        argon2_profile="test",
    )


@pytest.fixture
def cli_env(settings: Settings, kek: bytes, tmp_path: Path) -> dict[str, str]:
    """An operator's shell pointed at the test database, with its KEK and the cheap argon2."""
    assert settings.database_url is not None
    return environ_without_idp() | {
        "IDP_DATABASE_URL": settings.database_url,
        "IDP_KEY_ENCRYPTION_KEY": b64url(kek),
        "IDP_ARGON2_PROFILE": "test",
        "IDP_DATA_DIR": str(tmp_path / "unused-data-dir"),
    }


@dataclass
class Instance:
    """One running app instance: an HTTP client on it and the state its lifespan yielded."""

    client: httpx.AsyncClient
    state: AppState


InstanceFactory = Callable[..., AbstractAsyncContextManager[Instance]]


@pytest.fixture
def app_instance(settings: Settings, clock: FrozenClock, pool: asyncpg.Pool) -> InstanceFactory:
    """``async with app_instance() as instance``: an app with its lifespan running.

    Several may run at once on the one database (multi-instance tests). Keyword arguments
    override settings; the scheduler is off unless ``run_scheduler=True``; ``middleware`` and
    ``in_memory_first`` are create_app's.
    """

    @asynccontextmanager
    async def open_client(
        *,
        run_scheduler: bool = False,
        use_clock: FrozenClock | None = None,
        middleware: Sequence[Middleware] = (),
        in_memory_first: bool = True,
        **overrides: object,
    ) -> AsyncIterator[Instance]:
        app = create_app(
            replace(settings, **overrides),  # type: ignore[arg-type]
            clock=use_clock or clock,
            run_scheduler=run_scheduler,
            middleware=middleware,
            in_memory_first=in_memory_first,
        )
        async with app.router.lifespan_context(app) as state:
            assert state is not None

            async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
                scope["state"] = dict(state)  # what an ASGI server does with lifespan state
                await app(scope, receive, send)

            transport = httpx.ASGITransport(app=with_state)
            async with httpx.AsyncClient(transport=transport, base_url=settings.issuer) as client:
                yield Instance(client=client, state=cast(AppState, state))

    return open_client


@dataclass
class Served:
    """The app served over real HTTP (for libraries that fetch with their own HTTP stack)."""

    base_url: str
    settings: Settings


@asynccontextmanager
async def serving(
    settings: Settings,
    *,
    clock: Clock | None = None,
    hostname: str = "127.0.0.1",
    documents: DocumentFetcher | None = None,
) -> AsyncIterator[Served]:
    """uvicorn on a free port of 127.0.0.1, with the options idp serve gives it, the issuer being
    ``http://{hostname}:{port}`` (``localhost`` for passkeys: an RP ID is never an IP address),
    on ``clock`` (the real one unless given); ``documents``: create_app's metadata document
    fetcher (one trusting a test authority), which the caller closes."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))  # bound before uvicorn starts: no race for the port
        base_url = f"http://{hostname}:{listening.getsockname()[1]}"
        here = replace(settings, issuer=base_url)
        app = create_app(
            here, clock=clock or SystemClock(), run_scheduler=False, documents=documents
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                lifespan="on",
                **server_options(here),  # as idp serve runs it: proxies, head bounds
            )
        )
        task = asyncio.create_task(server.serve(sockets=[listening]))
        try:
            async with asyncio.timeout(15):
                while not server.started:
                    assert not task.done(), "uvicorn stopped while starting"
                    await asyncio.sleep(0.01)
            yield Served(base_url=base_url, settings=here)
        finally:
            server.should_exit = True
            await task


@pytest.fixture
async def served(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Served]:
    """The app served on 127.0.0.1 with the real clock (``serving``)."""
    async with serving(settings) as started:
        yield started


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[Processes]:
    """Real ``idp`` processes, each stopped at the end (see tests/processes.py)."""
    async with running(tmp_path) as started:
        yield started


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server on a free port; give its ``url`` as ``smtp_url`` to the app."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
