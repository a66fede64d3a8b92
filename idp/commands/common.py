"""What every subcommand shares: settings, a migrated database, one-line errors."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from idp.db.migrate import migrate
from idp.db.pool import create_pool
from idp.runtime import resolve
from idp.settings import Settings
from idp.terminal import printable


class UserError(Exception):
    """Reported as one line, exit status 1."""


Command = Callable[[argparse.Namespace, Settings, asyncpg.Pool], Awaitable[int]]


def actor() -> str:
    """Who ran the command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid={os.getuid()}"


def settings_for(args: argparse.Namespace) -> Settings:
    host = getattr(args, "host", "127.0.0.1")
    port = getattr(args, "port", 8000)
    return resolve(Settings.from_env(os.environ, host=host, port=port))


def with_pool(command: Command) -> Callable[[argparse.Namespace], int]:
    """Run an async command with resolved settings, a migrated database and a small pool."""

    def run(args: argparse.Namespace) -> int:
        settings = settings_for(args)

        async def main() -> int:
            assert settings.database_url is not None
            pool = await create_pool(settings.database_url, min_size=1, max_size=2)
            try:
                async with pool.acquire() as connection:
                    await migrate(connection)
                return await command(args, settings, pool)
            finally:
                await pool.close()

        return asyncio.run(main())

    return run


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def print_json(value: Any) -> None:
    # ensure_ascii (the default) writes every control and non-ASCII character as \uXXXX.
    print(json.dumps(value, indent=2))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[printable("-" if cell is None else cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in [list(headers), *cells]) for i in range(len(headers))]
    for row in [list(headers), *cells]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value
