"""Plain-SQL migrations: ``migrations/NNNN_name.sql``, each applied once, in order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from idp.db.pool import Connection
from idp.resources import resource_dir

# pg_advisory_xact_lock key: 'idp.migrate' as a stable 64-bit integer.
MIGRATE_LOCK_ID = 0x1D9_0001
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
SELECT_APPLIED = "SELECT version FROM schema_migrations"
INSERT_APPLIED = "INSERT INTO schema_migrations (version) VALUES ($1)"


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or resource_dir("migrations")
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append(Migration(version=path.stem, path=path))
    return found


async def migrate(connection: Connection, directory: Path | None = None) -> list[str]:
    """Apply pending migrations in one transaction; return the versions applied.

    The transaction-level advisory lock makes concurrent starts safe: the second process waits,
    then finds everything applied.
    """
    migrations = discover(directory)
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK_ID)
        await connection.execute(CREATE_TABLE)
        applied = {row["version"] for row in await connection.fetch(SELECT_APPLIED)}
        done = []
        for migration in migrations:
            if migration.version in applied:
                continue
            await connection.execute(migration.path.read_text())
            await connection.execute(INSERT_APPLIED, migration.version)
            done.append(migration.version)
    return done
