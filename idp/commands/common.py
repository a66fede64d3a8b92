"""What every subcommand shares: settings, a migrated database, one-line errors."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TextIO

import asyncpg

from idp.db.migrate import migrate
from idp.db.pool import create_pool
from idp.runtime import resolve
from idp.settings import Settings


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


# Bidirectional controls (Unicode Bidi Algorithm, UAX #9 §2): they reorder what follows them,
# so a stored name could make a line read differently from what it holds (CVE-2021-42574).
_BIDI_CONTROLS = frozenset(
    chr(code) for code in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
)


def _escape(char: str) -> str:
    if char in _BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
        code = ord(char)
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
    return char


def printable(value: object) -> str:
    """``value`` as text safe to print on a terminal: control characters (C0, DEL, C1), line
    and paragraph separators and bidi controls become visible escapes (``\\x1b``, ``\\u202e``).

    Stored strings come from visitors too (an email typed on the login page): printed raw, an
    ESC or BEL would let them rewrite lines of the output or the terminal's title. Every
    command prints stored data through this (``print_table`` does); ``--json`` output is
    escaped by ``json.dumps`` instead.
    """
    text = str(value)
    return text if text.isprintable() else "".join(_escape(char) for char in text)


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


def read_password(stdin: TextIO) -> str:
    """One line from stdin: never from argv, where other users and shell history see it."""
    interactive = stdin.isatty()
    password = getpass.getpass("Password: ") if interactive else stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise UserError("the password must have at least 8 characters (read from stdin)")
    return password
