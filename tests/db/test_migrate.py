"""migrate(): each migration applied exactly once, in order, even when several processes start
together. Every test runs on a database of its own, so the shared schema stays untouched."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from idp.clock import FrozenClock
from idp.db.grants import revoke_user_grants
from idp.db.migrate import discover, migrate
from idp.hashing import digest
from idp.oauth.client_auth import new_secret
from idp.resources import resource_dir
from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error

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


LEGACY_CLIENT = """
INSERT INTO clients (client_id, name, secret_hash, redirect_uris, grant_types, scopes, created_at)
VALUES ('legacy-app', 'app', $1, '{https://app.example/cb}', '{authorization_code,refresh_token}',
    '{openid}', $2)
RETURNING client_id
"""
LEGACY_USER = """
INSERT INTO users (id, email, password_hash, created_at, updated_at)
VALUES ($1, 'legacy@example.com', 'unused', $2, $2)
RETURNING id
"""
LEGACY_FAMILY = """
INSERT INTO refresh_families (id, client_id, user_id, sid, scopes, audience, auth_time,
    created_at, expires_at)
VALUES ($1, $2, $3, 'sid', '{openid}', '{}', $4, $4, $4::timestamptz + interval '30 days')
"""
LEGACY_TOKEN = """
INSERT INTO refresh_tokens (token_hash, family_id, created_at, idle_expires_at, consumed_at,
    access_jti)
VALUES ($1, $2, $3, $3::timestamptz + interval '14 days', $4, $5)
"""


async def test_refresh_tokens_issued_before_migration_0010_are_refused_cleanly(
    fresh_database_url: str,
    tmp_path: Path,
    app_instance: InstanceFactory,
    clock: FrozenClock,
) -> None:
    """Migration 0010 moves each family onto one row. A token issued before it (no handle part)
    is no refresh token now: refused with invalid_grant, inactive, a no-op to revoke, and its
    family stays as it was. The access tokens recorded in the last day are still deny-listed
    when the family is revoked."""
    for path in discover():
        if path.version < "0010":
            shutil.copy(path.path, tmp_path)
    now = datetime.now(UTC)
    clock.set(now)
    legacy, old = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    family, spent = uuid.uuid4(), uuid.uuid4()
    pool = await asyncpg.create_pool(fresh_database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as connection:
            await migrate(connection, tmp_path)
        # With the columns of that time: idp.db.clients names those of later migrations.
        secret, secret_hash = new_secret()
        client_id = await pool.fetchval(LEGACY_CLIENT, secret_hash, now)
        user_id = await pool.fetchval(LEGACY_USER, uuid.uuid4(), now)
        for family_id in (family, spent):
            await pool.execute(LEGACY_FAMILY, family_id, client_id, user_id, now)
        day_ago = now - timedelta(days=1, minutes=1)
        await pool.execute(LEGACY_TOKEN, digest(old), family, day_ago, day_ago, "old-jti")
        await pool.execute(LEGACY_TOKEN, digest(legacy), family, now, None, "legacy-jti")
        await pool.execute(LEGACY_TOKEN, digest("spent"), spent, now, now, "spent-jti")
        async with pool.acquire() as connection:
            assert (await migrate(connection))[0] == "0010_refresh_family_row"
        spent_row = await pool.fetchrow(
            "SELECT handle_hash, token_hash FROM refresh_families WHERE id = $1", spent
        )
    finally:
        await pool.close()
    assert spent_row is not None
    assert spent_row["handle_hash"] is not None  # a handle nobody holds
    assert spent_row["token_hash"] is None

    async with app_instance(database_url=fresh_database_url) as instance:
        http, auth = instance.client, (client_id, secret)
        form = {"grant_type": "refresh_token", "refresh_token": legacy}
        assert_oauth_error(await http.post("/token", auth=auth, data=form), 400, "invalid_grant")
        introspected = await http.post("/introspect", auth=auth, data={"token": legacy})
        assert introspected.json() == {"active": False}
        revoked = await http.post("/revoke", auth=auth, data={"token": legacy})
        assert revoked.status_code == 200, revoked.text
        migrated_pool = instance.state["pool"]
        assert await migrated_pool.fetchval(
            "SELECT generation = 0 AND revoked_at IS NULL FROM refresh_families WHERE id = $1",
            family,
        )
        async with migrated_pool.acquire() as connection, connection.transaction():
            await revoke_user_grants(connection, user_id, now, now + timedelta(hours=1))
        denied = await migrated_pool.fetchval("SELECT array_agg(jti) FROM revoked_access_tokens")
    assert "legacy-jti" in denied
    assert "old-jti" not in denied  # recorded more than a day before the migration
