"""The ``idp`` command (also ``python -m idp``).

Exit status: 0 success, 1 user error (one readable line on stderr, no traceback), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TextIO

import asyncpg

from idp.clock import SystemClock
from idp.commands import audit, clients, sessions, users
from idp.commands.common import UserError, actor, iso, printable, settings_for, with_pool
from idp.db import signing_keys
from idp.db.migrate import migrate
from idp.db.pool import create_pool
from idp.demo import DemoCredentials, seed
from idp.keys.crypto import KeyDecryptionError, public_pem
from idp.keys.lifecycle import KeyLifecycleError
from idp.keys.manager import KeyManager
from idp.settings import Settings, SettingsError


# -- serve / migrate ------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from idp.logs import configure as configure_logging
    from idp.logs import uvicorn_log_config
    from idp.server import serve

    configure_logging()
    settings = replace(settings_for(args), demo=args.demo)
    assert settings.database_url is not None
    assert settings.key_encryption_key is not None

    async def prepare() -> DemoCredentials | None:
        assert settings.database_url is not None
        pool = await create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            async with pool.acquire() as connection:
                await migrate(connection)
            await KeyManager(pool, settings, SystemClock()).tick(actor="startup")
            return await seed(pool, settings, SystemClock().now()) if args.demo else None
        finally:
            await pool.close()

    demo = asyncio.run(prepare())
    print(f"idp: serving {settings.issuer}")
    print(f"idp: discovery at {settings.issuer}/.well-known/openid-configuration")
    if demo is not None:
        print(f"idp: demo user {demo.email}, password {demo.password}")
        print(f"idp: sign in at {demo.authorization_url}")
    elif args.demo:
        print("idp: demo not seeded: the database already has other users or clients")
    sys.stdout.flush()
    serve(
        settings,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=uvicorn_log_config(),
    )
    return 0


async def cmd_migrate(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    # _with_pool has applied them already; report what the database now holds.
    versions = await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
    print(f"idp: database at migration {versions[-1]['version'] if versions else 'none'}")
    return 0


# -- keys -----------------------------------------------------------------------------------
async def cmd_keys_list(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    rows = [
        {
            "kid": key.record.kid,
            "alg": key.record.alg,
            "state": key.record.state,
            "created_at": iso(key.record.created_at),
            "activated_at": iso(key.record.activated_at),
            "retired_at": iso(key.retired_at),
            "revoked_at": iso(key.revoked_at),
            "revoked_reason": key.revoked_reason,
        }
        for key in await signing_keys.fetch_all(pool)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'KID':<44} {'ALG':<6} {'STATE':<9} {'CREATED':<26} {'ACTIVATED':<26} ENDED")
    for row in rows:
        ended = row["revoked_at"] or row["retired_at"] or "-"
        kid, alg, state = (printable(row[name]) for name in ("kid", "alg", "state"))
        print(
            f"{kid:<44} {alg:<6} {state:<9} {row['created_at']:<26} "
            f"{row['activated_at'] or '-':<26} {ended}"
        )
    return 0


async def cmd_keys_rotate(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    kid = await KeyManager(pool, settings, SystemClock()).rotate(actor=actor())
    print(kid)
    return 0


async def cmd_keys_export(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    found = await signing_keys.fetch_public_jwk(pool, args.kid)
    if found is None:
        raise UserError(f"no signing key with kid {args.kid!r}")
    jwk, state = found
    if state in ("retired", "revoked"):
        print(
            f"idp: warning: key {args.kid} is {state}; verifiers must not trust it", file=sys.stderr
        )
    print(public_pem(jwk), end="")
    return 0


def _confirm(prompt: str, stdin: TextIO) -> bool:
    print(prompt, end="", file=sys.stderr, flush=True)
    answer = stdin.readline()
    return answer.strip().lower() in ("y", "yes")


async def cmd_keys_revoke(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    if not args.reason.strip():
        raise UserError("--reason must say why the key is revoked")
    target = "EVERY signing key" if args.all else f"signing key {args.kid}"
    if args.kid is not None:
        found = await signing_keys.fetch_public_jwk(pool, args.kid)
        if found is None:
            raise UserError(f"no signing key with kid {args.kid!r}")
        if found[1] in ("retired", "revoked"):
            raise UserError(f"key {args.kid} is already {found[1]}")
    if not args.yes and not _confirm(
        f"Revoke {target}? Tokens it signed stop verifying everywhere. Type 'yes' to confirm: ",
        sys.stdin,
    ):
        raise UserError("not confirmed; nothing revoked")
    manager = KeyManager(pool, settings, SystemClock())
    applied = await manager.revoke(None if args.all else args.kid, args.reason, actor=actor())
    for item in applied:
        print(f"{type(item.transition).__name__.lower():<9} {item.kid}")
    return 0


# -- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idp", description="OAuth 2.0 / OpenID Connect provider", allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate, make sure a signing key exists, serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    serve.add_argument("--demo", action="store_true", help="seed a demo user and client")
    serve.set_defaults(run=cmd_serve)

    commands.add_parser("migrate", help="apply pending migrations").set_defaults(
        run=with_pool(cmd_migrate)
    )

    keys = commands.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys", required=True
    )
    listing = keys.add_parser("list", help="every key and its state")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=with_pool(cmd_keys_list))
    keys.add_parser("rotate", help="a new key signs from now").set_defaults(
        run=with_pool(cmd_keys_rotate)
    )
    # Parsers that take a KID have no "-h": a kid may start with "-h" (use --help).
    export = keys.add_parser("export", help="a key's public half", add_help=False)
    export.add_argument("--help", action="help", help="show this help message and exit")
    export.add_argument("kid", nargs="?")
    export.set_defaults(identifier="kid", required=True)
    export.add_argument("--pem", action="store_true", required=True, help="as a PEM public key")
    export.set_defaults(run=with_pool(cmd_keys_export))
    users.add_parsers(commands)
    clients.add_parsers(commands)
    sessions.add_parsers(commands)
    audit.add_parsers(commands)
    add_revoke_arguments(
        keys.add_parser("revoke", help="incident response: unpublish a key now", add_help=False)
    )
    return parser


def add_revoke_arguments(revoke: argparse.ArgumentParser) -> None:
    revoke.add_argument("--help", action="help", help="show this help message and exit")
    revoke.add_argument("kid", nargs="?")
    revoke.set_defaults(identifier="kid", required=False)
    revoke.add_argument("--all", action="store_true", help="revoke every key and start afresh")
    revoke.add_argument("--reason", required=True)
    revoke.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    revoke.set_defaults(run=with_pool(cmd_keys_revoke))


# Kids (RFC 7638 thumbprints) and client ids are base64url: one in 64 starts with "-".
_BASE64URL = re.compile(r"^-[A-Za-z0-9_-]+$")


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """argparse, except that an identifier starting with "-" is still taken for the positional
    argument a command names in ``identifier`` (declared ``nargs="?"``; ``required`` says
    whether it must be given)."""
    args, extras = parser.parse_known_args(argv)
    name: str | None = getattr(args, "identifier", None)
    if name and len(extras) == 1 and _BASE64URL.match(extras[0]) and getattr(args, name) is None:
        setattr(args, name, extras[0])
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if name and getattr(args, "required", False) and getattr(args, name) is None:
        parser.error(f"the following arguments are required: {name}")
    return args


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parse(parser, argv)
    if getattr(args, "all", None) is not None and (args.kid is None) == (not args.all):
        parser.error("name exactly one KID, or --all")
    try:
        result: int = args.run(args)
        return result
    except (UserError, SettingsError, KeyLifecycleError, KeyDecryptionError) as exc:
        print(f"idp: {exc}", file=sys.stderr)
        return 1
    except (PermissionError, FileNotFoundError, IsADirectoryError) as exc:
        print(f"idp: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"idp: database error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


def revoke_key_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/revoke-key``: the same code path as ``idp keys revoke``."""
    parser = argparse.ArgumentParser(
        prog="revoke-key",
        description="Revoke a compromised signing key in every idp process now.",
        allow_abbrev=False,
        add_help=False,
    )
    add_revoke_arguments(parser)
    return run(parser, argv)
