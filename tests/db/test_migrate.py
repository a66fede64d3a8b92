"""migrate(): each migration applied exactly once, in order, even when several processes start
together. Every test runs on a database of its own, so the shared schema stays untouched."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from idp.db.migrate import discover, migrate
from idp.resources import resource_dir

CONCURRENT_STARTS = 5


@pytest.fixture
async def fresh_database_url(migrated: str) -> AsyncIterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
    name = f"idp_migrate_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(migrated)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(migrated)._replace(path=f"/{name}"))
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def migrate_concurrently(url: str, directory: Path | None = None) -> list[list[str]]:
    """``CONCURRENT_STARTS`` connections, all open before any of them migrates."""
    connections = await asyncio.gather(*(asyncpg.connect(url) for _ in range(CONCURRENT_STARTS)))
    try:
        return list(
            await asyncio.gather(*(migrate(connection, directory) for connection in connections))
        )
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))


async def test_concurrent_migrations_apply_each_file_exactly_once(
    fresh_database_url: str,
) -> None:
    files = sorted(path.stem for path in resource_dir("migrations").glob("*.sql"))

    results = await migrate_concurrently(fresh_database_url)

    assert sorted(version for applied in results for version in applied) == files
    assert sorted(results, key=len, reverse=True) == [files, *[[]] * (CONCURRENT_STARTS - 1)]
    connection = await asyncpg.connect(fresh_database_url)
    try:
        rows = await connection.fetch("SELECT version FROM schema_migrations ORDER BY version")
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
    finally:
        await connection.close()
    assert [row["version"] for row in rows] == files
    assert {"signing_keys", "audit_log"} <= {row["tablename"] for row in tables}


async def test_migrating_an_up_to_date_database_applies_nothing(fresh_database_url: str) -> None:
    connection = await asyncpg.connect(fresh_database_url)
    try:
        first = await migrate(connection)
        again = await migrate(connection)
        count = await connection.fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        await connection.close()

    assert first == [migration.version for migration in discover()]
    assert again == []
    assert count == len(first)


async def test_concurrent_migrations_run_each_statement_once_and_in_order(
    fresh_database_url: str, tmp_path: Path
) -> None:
    # Statements that fail or double up if run twice or out of order.
    (tmp_path / "0001_create.sql").write_text("CREATE TABLE runs (name text PRIMARY KEY);")
    (tmp_path / "0002_first.sql").write_text("INSERT INTO runs VALUES ('0002');")
    (tmp_path / "0003_second.sql").write_text(
        "INSERT INTO runs SELECT '0003' FROM runs WHERE name = '0002';"
    )

    results = await migrate_concurrently(fresh_database_url, tmp_path)
    again = await migrate_concurrently(fresh_database_url, tmp_path)

    assert sorted(version for applied in results for version in applied) == [
        "0001_create",
        "0002_first",
        "0003_second",
    ]
    assert again == [[]] * CONCURRENT_STARTS
    connection = await asyncpg.connect(fresh_database_url)
    try:
        runs = await connection.fetch("SELECT name FROM runs ORDER BY name")
    finally:
        await connection.close()
    assert [row["name"] for row in runs] == ["0002", "0003"]


def test_misnamed_migration_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("SELECT 1;")
    (tmp_path / "add-users.sql").write_text("SELECT 1;")

    with pytest.raises(ValueError, match=r"add-users\.sql"):
        discover(tmp_path)
