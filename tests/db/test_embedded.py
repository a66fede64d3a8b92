"""The zero-set-up mode: an owner-only data directory, its own PostgreSQL (one server for the
whole module), joined by every idp process on the same directory, and a generated
key-encryption key reused by all of them."""

from __future__ import annotations

import json
import os
import stat
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from idp.clock import FrozenClock
from idp.db.embedded import PGDATA_NAME, ensure_data_dir, start_embedded_postgres
from idp.db.migrate import migrate
from idp.db.pool import create_pool
from idp.keys.crypto import KEK_FILE, b64url, load_or_create_kek
from idp.keys.manager import KeyManager
from idp.settings import Settings
from tests.factories import Completed, environ_without_idp, run_command

# What a second idp process sees of the server, through idp's own start-up path.
PROBE = """
import asyncio, json, os
import asyncpg
from idp.keys.crypto import b64url
from idp.runtime import resolve
from idp.settings import Settings

async def main() -> None:
    settings = resolve(Settings.from_env(os.environ))
    connection = await asyncpg.connect(settings.database_url)
    try:
        started = await connection.fetchval("SELECT pg_postmaster_start_time()")
    finally:
        await connection.close()
    print(json.dumps({"started": started.isoformat(), "kek": b64url(settings.key_encryption_key)}))

asyncio.run(main())
"""


@dataclass(frozen=True)
class Embedded:
    data_dir: Path
    url: str


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    """One embedded server for the module, on a data dir that did not exist before."""
    data_dir = tmp_path_factory.mktemp("embedded") / "idp-data"
    url = start_embedded_postgres(data_dir)
    try:
        yield Embedded(data_dir=data_dir.resolve(), url=url)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            # The same handle start_embedded_postgres got; the last user stops the server.
            pgserver.get_server(data_dir / PGDATA_NAME).cleanup()


async def run_in_data_dir(args: list[str], data_dir: Path, cwd: Path) -> Completed:
    """``python ARGS`` as an idp process in embedded mode: IDP_DATA_DIR only."""
    env = environ_without_idp() | {"IDP_DATA_DIR": str(data_dir)}
    return await run_command([sys.executable, *args], env, cwd=cwd)


# -- the data directory and its key-encryption key ------------------------------------------
def test_ensure_data_dir_creates_an_owner_only_directory_whatever_the_umask(
    tmp_path: Path,
) -> None:
    previous = os.umask(0o277)  # would leave mkdir's 0700 at 0500
    try:
        created = ensure_data_dir(tmp_path / "data")
    finally:
        os.umask(previous)

    assert created == tmp_path / "data"
    assert stat.S_IMODE(created.stat().st_mode) == 0o700


def test_ensure_data_dir_returns_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    created = ensure_data_dir(Path(".idp"))

    assert created == (tmp_path / ".idp").resolve()
    assert created.is_absolute()
    assert stat.S_IMODE(created.stat().st_mode) == 0o700


def test_key_encryption_key_file_is_owner_only_and_reused(tmp_path: Path) -> None:
    previous = os.umask(0)  # the file must not rely on the umask to stay private
    try:
        first = load_or_create_kek(tmp_path)
    finally:
        os.umask(previous)
    second = load_or_create_kek(tmp_path)

    path = tmp_path / KEK_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 32
    assert second == first
    assert path.read_text().strip() == b64url(first)
    assert os.listdir(tmp_path) == [KEK_FILE]  # no temporary file left behind


def test_key_encryption_keys_differ_between_data_dirs(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    assert load_or_create_kek(tmp_path / "a") != load_or_create_kek(tmp_path / "b")


# -- the embedded server --------------------------------------------------------------------
def test_started_data_dir_stays_unlistable_to_others(embedded: Embedded) -> None:
    # Run as root, pgserver's postgres user needs to traverse (o+x) the directory, no more.
    expected = 0o711 if os.geteuid() == 0 else 0o700
    assert stat.S_IMODE(embedded.data_dir.stat().st_mode) == expected


async def test_start_embedded_postgres_returns_a_url_asyncpg_connects_to(
    embedded: Embedded,
) -> None:
    connection = await asyncpg.connect(embedded.url)
    try:
        assert await connection.fetchval("SELECT 1") == 1
        data_directory = await connection.fetchval("SHOW data_directory")
    finally:
        await connection.close()

    assert Path(data_directory) == embedded.data_dir / PGDATA_NAME


async def test_second_process_on_the_data_dir_joins_the_running_server_and_sees_its_data(
    embedded: Embedded, tmp_path: Path
) -> None:
    kek = load_or_create_kek(embedded.data_dir)
    connection = await asyncpg.connect(embedded.url)
    try:
        await migrate(connection)
        started = await connection.fetchval("SELECT pg_postmaster_start_time()")
    finally:
        await connection.close()
    settings = Settings(database_url=embedded.url, key_encryption_key=kek)
    pool = await create_pool(embedded.url, min_size=1, max_size=2)
    try:
        applied = await KeyManager(pool, settings, FrozenClock()).tick()
    finally:
        await pool.close()
    written = sorted(item.kid for item in applied)

    probe = await run_in_data_dir(["-c", PROBE], embedded.data_dir, cwd=tmp_path)
    listing = await run_in_data_dir(
        ["-m", "idp", "keys", "list", "--json"], embedded.data_dir, cwd=tmp_path
    )

    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert seen["started"] == started.isoformat()  # the same server, not a second one
    assert seen["kek"] == b64url(kek)  # and the same key-encryption key
    assert listing.returncode == 0, listing.stderr
    assert sorted(key["kid"] for key in json.loads(listing.stdout)) == written
    # Those processes have exited; the server this one still uses keeps running.
    connection = await asyncpg.connect(embedded.url)
    try:
        assert await connection.fetchval("SELECT pg_postmaster_start_time()") == started
    finally:
        await connection.close()
