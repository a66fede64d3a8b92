"""``idp migrate``: apply pending migrations (``with_pool`` does, under an advisory lock), and
say which one the database is at."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from idp.commands.common import with_pool
from idp.settings import Settings


async def migrate(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    versions = await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
    print(f"idp: database at migration {versions[-1]['version'] if versions else 'none'}")
    return 0


def add_parsers(commands: Any) -> None:
    commands.add_parser(
        "migrate",
        help="apply pending database migrations, once (safe when several processes start)",
    ).set_defaults(run=with_pool(migrate))
