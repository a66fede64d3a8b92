"""Real ``idp`` processes for the multi-process and crash tests: ``idp serve`` on a free port of
127.0.0.1 and other commands, always stopped, their output kept in files and shown on failure;
and what PostgreSQL says about their backends (lock waits, open transactions, row locks)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from idp.keys.crypto import b64url
from tests.factories import environ_without_idp
from tests.helpers import IDP

ROOT = Path(__file__).resolve().parent.parent
READY_LIMIT = 30.0
STOP_LIMIT = 10.0
LOCK_WAIT_LIMIT = 20.0
BACKEND_EXIT_LIMIT = 15.0


def idp_environ(database_url: str, kek: bytes, issuer: str, **overrides: str) -> dict[str, str]:
    """The environment of every process of one deployment: one external database, one KEK, one
    issuer (the processes stand behind one load balancer)."""
    env = environ_without_idp()
    env.update(
        {
            "IDP_DATABASE_URL": database_url,
            "IDP_KEY_ENCRYPTION_KEY": b64url(kek),
            "IDP_ISSUER": issuer,
            "IDP_ARGON2_PROFILE": "test",
            # The safety-net reload is minutes away: only NOTIFY can explain a prompt change.
            "IDP_KEY_CHECK_INTERVAL": "300s",
        }
    )
    env.update(overrides)
    return env


@dataclass
class Spawned:
    """One ``idp`` process; stdout and stderr go to ``log``."""

    name: str
    process: asyncio.subprocess.Process
    log: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} serves no port"
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def describe(self) -> str:
        return (
            f"--- {self.name} (pid {self.pid}, exit status {self.process.returncode}) ---\n"
            f"{self.output()}"
        )


class Processes:
    """Starts ``idp`` processes and, in ``close``, stops every one still running."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._count = 0
        self.started: list[Spawned] = []

    async def spawn(
        self, arguments: Sequence[str], env: dict[str, str], *, port: int | None = None
    ) -> Spawned:
        self._count += 1  # before any await: processes may be spawned concurrently
        words = [word for word in arguments[:2] if not word.startswith("-")]
        name = " ".join(["idp", *words]) + ("" if port is None else f" on port {port}")
        log = self._directory / f"idp-{self._count}.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                *IDP,
                *arguments,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=ROOT,
                start_new_session=True,  # a Ctrl-C of pytest is not theirs; they are stopped
            )
        spawned = Spawned(name, process, log, port)
        self.started.append(spawned)
        return spawned

    async def serve(self, env: dict[str, str], port: int, *, workers: int = 1) -> Spawned:
        """``idp serve --workers N`` (1: uvicorn in this very process), once /readyz says ready."""
        served = await self.spawn(
            ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            env,
            port=port,
        )
        deadline = time.monotonic() + READY_LIMIT
        async with httpx.AsyncClient(base_url=served.url, timeout=5) as http:
            while True:
                assert served.running, f"idp serve exited while starting\n{served.describe()}"
                assert time.monotonic() < deadline, f"idp serve not ready\n{served.describe()}"
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/readyz")).status_code == 200:
                        return served
                await asyncio.sleep(0.05)

    async def kill(self, spawned: Spawned) -> None:
        """SIGKILL: no clean-up of any kind, as in a crash or an OOM kill."""
        assert spawned.running, f"{spawned.name} had exited already\n{spawned.describe()}"
        spawned.process.send_signal(signal.SIGKILL)
        await spawned.process.wait()
        assert spawned.process.returncode == -signal.SIGKILL, spawned.describe()

    async def stop(self, spawned: Spawned) -> None:
        """SIGTERM, then SIGKILL if it has not exited within STOP_LIMIT."""
        if not spawned.running:
            return
        with contextlib.suppress(ProcessLookupError):  # it may exit meanwhile
            spawned.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_LIMIT):
                await spawned.process.wait()
        except TimeoutError:
            spawned.process.send_signal(signal.SIGKILL)
            await spawned.process.wait()

    async def close(self) -> None:
        await asyncio.gather(*(self.stop(spawned) for spawned in self.started))

    def report(self) -> str:
        return "\n".join(spawned.describe() for spawned in self.started)


@contextlib.asynccontextmanager
async def running(directory: Path) -> AsyncIterator[Processes]:
    """Processes stopped whatever happens; their output printed (pytest shows it on failure)."""
    processes = Processes(directory)
    try:
        yield processes
    finally:
        await processes.close()
        print(processes.report())


# -- PostgreSQL's view -------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def holding_lock(database_url: str, statement: str, *args: object) -> AsyncIterator[int]:
    """A transaction of the test's own holding the locks ``statement`` takes (LOCK TABLE, or a
    SELECT ... FOR UPDATE that must find rows), rolled back on exit, which releases them;
    yields its backend pid."""
    connection = await asyncpg.connect(database_url)
    try:
        transaction = connection.transaction()
        await transaction.start()
        try:
            rows = await connection.fetch(statement, *args)
            assert rows or statement.startswith("LOCK "), f"nothing locked: {statement}"
            pid: int = await connection.fetchval("SELECT pg_backend_pid()")
            yield pid
        finally:
            await transaction.rollback()
    finally:
        await connection.close()


@dataclass(frozen=True)
class LockWait:
    """A backend waiting for a lock inside an open transaction."""

    pid: int
    query: str
    has_written: bool  # a transaction id is assigned: the transaction has written rows
    blocked_by: list[int]


LOCK_WAITS = """
SELECT pid, query, backend_xid IS NOT NULL AS has_written, pg_blocking_pids(pid) AS blocked_by
FROM pg_stat_activity
WHERE state = 'active' AND wait_event_type = 'Lock' AND xact_start IS NOT NULL
  AND $1 = ANY(pg_blocking_pids(pid))
"""


async def wait_for_lock_wait(pool: asyncpg.Pool, spawned: Spawned, blocker: int) -> LockWait:
    """The one backend waiting, inside an open transaction, for a lock that the backend
    ``blocker`` holds, once there is one; ``spawned`` must keep running meanwhile."""
    deadline = time.monotonic() + LOCK_WAIT_LIMIT
    while True:
        rows = await pool.fetch(LOCK_WAITS, blocker)
        if rows:
            assert len(rows) == 1, [dict(row) for row in rows]
            row = rows[0]
            return LockWait(row["pid"], row["query"], row["has_written"], list(row["blocked_by"]))
        assert spawned.running, f"exited instead of waiting\n{spawned.describe()}"
        assert time.monotonic() < deadline, (
            f"nothing waits for the lock of backend {blocker}\n{spawned.describe()}"
        )
        await asyncio.sleep(0.02)


IDLE_IN_TRANSACTION = """
SELECT backend_xid IS NOT NULL AS has_written FROM pg_stat_activity
WHERE pid = $1 AND state = 'idle in transaction'
"""


async def wait_for_idle_in_transaction(pool: asyncpg.Pool, pid: int) -> bool:
    """Once the backend ``pid`` has finished a statement and waits, inside its transaction, for
    its client's next one: whether the transaction has written rows."""
    deadline = time.monotonic() + LOCK_WAIT_LIMIT
    while (has_written := await pool.fetchval(IDLE_IN_TRANSACTION, pid)) is None:
        assert time.monotonic() < deadline, f"backend {pid} never went idle in its transaction"
        await asyncio.sleep(0.02)
    return bool(has_written)


async def wait_until_backend_gone(pool: asyncpg.Pool, pid: int) -> None:
    """A backend whose client died notices only when it next reads from it: once the lock it
    waited for is granted and its statement has run. Its transaction has ended when it is gone
    (rolled back, unless the client had sent what commits it before dying)."""
    deadline = time.monotonic() + BACKEND_EXIT_LIMIT
    while await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
        assert time.monotonic() < deadline, f"backend {pid} still there after its client died"
        await asyncio.sleep(0.02)


async def row_locked(pool: asyncpg.Pool, query: str, *args: object) -> bool:
    """Whether another transaction holds a row lock (an uncommitted UPDATE, say) on a row that
    ``query`` (a SELECT of one table) returns."""
    async with pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            await connection.fetch(f"{query} FOR UPDATE NOWAIT", *args)
        except asyncpg.LockNotAvailableError:
            return True
        finally:
            await transaction.rollback()
        return False
