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
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from idp.app import create_app
from idp.clock import Clock, FrozenClock, SystemClock
from idp.db.migrate import migrate
from idp.db.pool import create_pool
from idp.keys import crypto
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
SELECT tablename FROM pg_tables
WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
ORDER BY tablename
"""
# Settings of the session's own embedded server only: what a crash of this machine would lose
# does not matter to a test, and TRUNCATE no longer waits for the disk.
THROWAWAY_SERVER = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def xdist_worker() -> str | None:
    """The pytest-xdist worker this process is (``gw0``, ``gw1``...), None when not one."""
    return os.environ.get("PYTEST_XDIST_WORKER")


MAX_WORKERS = 4  # each runs its own PostgreSQL, Chromium, idp processes: more only crowd them


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (scripts/test gives it): one pytest-xdist worker per usable core, at most
    MAX_WORKERS; none (a plain serial run) when the arguments name only files or tests, where
    starting workers costs more than it saves."""
    here = config.invocation_params.dir
    named = [Path(here, argument.split("::")[0]) for argument in config.args]
    if named and all(path.is_file() for path in named):
        return 0
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """The session's database: one per process, so that pytest-xdist workers never share one
    (each TRUNCATEs between its tests). IDP_TEST_DATABASE_URL's own database for a serial run,
    or a database of its own per worker on that server; otherwise an embedded server per
    process, in a fresh temporary directory."""
    url = os.environ.get("IDP_TEST_DATABASE_URL")
    worker = xdist_worker()
    if url and worker is None:
        yield url
    elif url and worker is not None:
        # A fresh database named after the worker (one an interrupted run left is dropped).
        name = f"idp_test_{worker}"
        await execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await execute(url, f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
        finally:
            await execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            directory = tempfile.mkdtemp(prefix="idp-test-pg-")
            server = pgserver.get_server(Path(directory) / "pg", cleanup_mode="delete")
        try:
            embedded = str(server.get_uri())
            for name, value in THROWAWAY_SERVER.items():
                await execute(embedded, f"ALTER SYSTEM SET {name} = {value}")
            await execute(embedded, "SELECT pg_reload_conf()")
            yield embedded
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server.cleanup()
            shutil.rmtree(directory, ignore_errors=True)


async def execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
async def migrated(database_url: str) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        await migrate(connection)
    finally:
        await connection.close()
    return database_url


@pytest.fixture(scope="session")
async def used_tables(migrated: str) -> str:
    """One query naming the tables a test may have left something in: rows, or a sequence
    that has moved (RESTART IDENTITY puts it back to 1 only for the tables it truncates)."""
    connection = await asyncpg.connect(migrated)
    try:
        tables = [row["tablename"] for row in await connection.fetch(ALL_TABLES)]
        owned = await connection.fetch(
            """
            SELECT DISTINCT owner.relname AS table_name, sequence.oid::regclass::text AS sequence
            FROM pg_depend
            JOIN pg_class sequence ON sequence.oid = pg_depend.objid AND sequence.relkind = 'S'
            JOIN pg_class owner ON owner.oid = pg_depend.refobjid
            JOIN pg_namespace ON pg_namespace.oid = owner.relnamespace
            WHERE pg_namespace.nspname = 'public' AND pg_depend.deptype IN ('a', 'i')
            """
        )
    finally:
        await connection.close()
    checks = [f"SELECT {quote(name)} WHERE EXISTS (SELECT FROM {ident(name)})" for name in tables]
    checks += [
        f"SELECT {quote(row['table_name'])} FROM {row['sequence']} WHERE is_called" for row in owned
    ]
    return " UNION ".join(checks)


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture
async def pool(migrated: str, used_tables: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on an empty database (TRUNCATE, not rollback: races in tests are real).

    Only the tables something was written to are truncated: TRUNCATE costs per table (new
    files for the table and its indexes), most tests touch a few of them."""
    pool = await create_pool(migrated, min_size=1, max_size=10)
    used = [record[0] for record in await pool.fetch(used_tables)]
    if used:
        # Its own bound: emptying tables waits for each lock and can outlast the pool's 5 s
        # on a loaded machine (seen once with the whole suite beside a browser test run).
        # CASCADE: a referencing table left empty would otherwise refuse the TRUNCATE.
        tables = ", ".join(ident(name) for name in used)
        await pool.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE", timeout=60)
    try:
        yield pool
    finally:
        await pool.close()


class PremadeRsaKeys:
    """``rsa.generate_private_key`` for idp.keys.crypto in this test process: the keys made in
    earlier tests again, a new one only when every one made so far was handed out in this very
    test (so one test never gets the same key twice, and no two apps or rotations share one).

    Every app start creates an active and a pending RS256 key (idp.keys.manager), about 60 ms
    each, in most of the suite's tests; idp's own code still runs whole (thumbprint, x5c,
    encryption under the test's KEK, the insert, the audit). Subprocesses generate their own."""

    def __init__(self, real: ModuleType) -> None:
        self._real = real
        self._lock = threading.Lock()
        self._made: dict[tuple[int, int], list[rsa.RSAPrivateKey]] = {}
        self._given = 0  # how many of each list this test had

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)  # RSAPrivateKey and the rest of the module

    def generate_private_key(self, public_exponent: int, key_size: int) -> rsa.RSAPrivateKey:
        with self._lock:
            made = self._made.setdefault((public_exponent, key_size), [])
            if self._given >= len(made):
                made.append(self._real.generate_private_key(public_exponent, key_size))
            key = made[self._given]
            self._given += 1
            return key

    def next_test(self) -> None:
        with self._lock:
            self._given = 0


PREMADE_RSA_KEYS = PremadeRsaKeys(rsa)
crypto.rsa = PREMADE_RSA_KEYS  # type: ignore[attr-defined,assignment]


@pytest.fixture(autouse=True)
def premade_rsa_keys() -> None:
    PREMADE_RSA_KEYS.next_test()


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


def free_socket() -> socket.socket:
    """A socket bound to a free port of 127.0.0.1, for ``uvicorn_serving``."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))  # bound before uvicorn starts: no race for the port
    return listening


@asynccontextmanager
async def uvicorn_serving(app: Any, listening: socket.socket, **options: Any) -> AsyncIterator[str]:
    """``app`` served by uvicorn on ``listening`` (uvicorn.Config ``options`` added) until the
    block ends; yields its base URL."""
    # A bounded graceful shutdown: a request still open at the end of the block (a test that
    # failed half-way, say) cannot keep the test waiting for ever.
    options.setdefault("timeout_graceful_shutdown", 10)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        async with asyncio.timeout(15):
            while not server.started:
                assert not task.done(), "uvicorn stopped while starting"
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


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
        # as idp serve runs it: proxies, head bounds
        async with uvicorn_serving(app, listening, **server_options(here)):
            yield Served(base_url=base_url, settings=here)


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
