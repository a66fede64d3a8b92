"""A database outage, for real: ``idp serve`` on its embedded PostgreSQL, which the test stops in
the middle of the run and starts again.

While it is away, what idp holds in memory keeps answering (JWKS, discovery, /healthz), /readyz
says not ready, and what needs the database answers 503 with Retry-After within
IDP_DATABASE_TIMEOUT, never a 500 or a hang. When it is back, the pool and the LISTEN connection
recover by themselves, without a restart, and nothing was lost: a refresh family created before
the outage still refreshes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx

from idp.db.listener import APPLICATION_NAME
from idp.settings import Settings
from tests.factories import assert_oauth_error, environ_without_idp, make_client, make_user
from tests.helpers import free_port
from tests.oauth.flow import Authorization, authorize_code, exchange_code
from tests.processes import Processes, running

REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"
DATABASE_TIMEOUT = 2.0  # IDP_DATABASE_TIMEOUT of the served process, seconds
ANSWER_LIMIT = DATABASE_TIMEOUT + 3.0  # the 503 must come within the timeout, plus slack
RECOVERY_LIMIT = 20.0  # "within a few seconds", with room for a loaded CI machine
# What Chromium sends when it navigates: the readable page, not JSON.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class EmbeddedPostgres:
    """The PostgreSQL that ``idp serve`` started in ``data_dir/pg``, stopped and started again
    behind its back with the very options pgserver used (its socket directory, no TCP)."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        self.socket_dir = lines[4]
        self.url = f"postgresql://postgres:@/postgres?host={self.socket_dir}"

    def pid(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return None
        return int(pidfile.read_text().splitlines()[0])

    async def stop(self) -> None:
        """Fast shutdown (SIGINT): every backend ends, every client's connection drops."""
        pid = self.pid()
        assert pid is not None, "PostgreSQL is not running"
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while _alive(pid):
            assert time.monotonic() < deadline, "PostgreSQL did not stop"
            await asyncio.sleep(0.05)

    async def start(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver import _commands  # the binaries pgserver itself runs

        pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 - made at import, one per binary

        user = "pgserver" if os.geteuid() == 0 else None
        arguments = ["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}"]
        arguments += ["-l", str(self.pgdata / "log"), "start"]
        await asyncio.to_thread(pg_ctl, arguments, pgdata=self.pgdata, user=user, timeout=30)

    def kill_leftover(self) -> None:
        pid = self.pid()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.asynccontextmanager
async def served_on_embedded_postgres(
    tmp_path: Path,
) -> AsyncIterator[tuple[Processes, str, EmbeddedPostgres]]:
    port = free_port()
    env = environ_without_idp()
    env.update(
        {
            "IDP_DATA_DIR": str(tmp_path / "data"),
            "IDP_ISSUER": f"http://127.0.0.1:{port}",
            "IDP_ARGON2_PROFILE": "test",
            "IDP_DATABASE_TIMEOUT": f"{DATABASE_TIMEOUT:g}s",
        }
    )
    postgres: EmbeddedPostgres | None = None
    async with running(tmp_path) as processes:
        try:
            served = await processes.serve(env, port)
            postgres = EmbeddedPostgres(tmp_path / "data" / "pg")
            yield processes, served.url, postgres
        finally:
            await processes.close()
            if postgres is not None:
                postgres.kill_leftover()


async def listener_backends(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            APPLICATION_NAME,
        )
        return count
    finally:
        await connection.close()


async def test_an_outage_keeps_memory_answers_gives_503s_and_heals_without_a_restart(
    tmp_path: Path,
) -> None:
    async with served_on_embedded_postgres(tmp_path) as (_, base, postgres):
        settings = Settings(issuer=base, database_url=postgres.url)
        pool = await asyncpg.create_pool(postgres.url, min_size=1, max_size=2)
        try:
            client, secret = await make_client(
                pool, settings, grant_types=("authorization_code", "refresh_token"),
                redirect_uris=(REDIRECT,), scopes=("openid", "email"), first_party=True,
            )  # fmt: skip
            user = await make_user(pool, password=PASSWORD)
        finally:
            await pool.close()

        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            auth = Authorization(client.client_id, REDIRECT, scope="openid email")
            code = await authorize_code(http, auth, user.email, PASSWORD)
            exchanged = await exchange_code(http, client.client_id, secret, code, auth)
            assert exchanged.status_code == 200, exchanged.text
            refresh_token = exchanged.json()["refresh_token"]
            jwks_before = (await http.get("/jwks.json")).content

            await postgres.stop()

            # What is held in memory answers as before.
            jwks = await http.get("/jwks.json")
            assert jwks.status_code == 200
            assert jwks.content == jwks_before
            assert (await http.get("/.well-known/openid-configuration")).status_code == 200
            assert (await http.get("/healthz")).status_code == 200
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"] == "unreachable"

            # What needs the database: 503, Retry-After, a JSON error, in bounded time.
            started = time.monotonic()
            refused = await http.post(
                "/token",
                auth=(client.client_id, secret),
                data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            )
            took = time.monotonic() - started
            assert_oauth_error(refused, 503, "temporarily_unavailable")
            assert int(refused.headers["retry-after"]) > 0
            assert took < ANSWER_LIMIT, f"/token took {took:.1f}s while the database was down"
            page = await http.get(
                Authorization(client.client_id, REDIRECT, scope="openid email").url(),
                headers={"Accept": BROWSER_ACCEPT},
            )
            assert page.status_code == 503, page.headers.get("location")
            assert page.headers["content-type"].startswith("text/html")
            assert "retry-after" in page.headers

            await postgres.start()

            # Without any restart of idp: ready again, the refresh family from before the
            # outage refreshes (the refused try spent nothing), a new sign-in works.
            deadline = time.monotonic() + RECOVERY_LIMIT
            while (await http.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "idp did not become ready again"
                await asyncio.sleep(0.2)
            refreshed = await http.post(
                "/token",
                auth=(client.client_id, secret),
                data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            )
            assert refreshed.status_code == 200, refreshed.text
            http.cookies.clear()
            again = Authorization(client.client_id, REDIRECT, scope="openid email")
            assert await authorize_code(http, again, user.email, PASSWORD)
            # The LISTEN connection is back too (it reloads the keyring and the clients).
            while await listener_backends(postgres.url) != 1:
                assert time.monotonic() < deadline, "the LISTEN connection did not come back"
                await asyncio.sleep(0.2)
