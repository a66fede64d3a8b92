"""``idp keys``: list, rotate, export, revoke (and ``scripts/revoke-key``, the same revoke)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import asyncpg

from idp.admin import keys as admin_keys
from idp.clock import SystemClock
from idp.commands.common import UserError, actor, iso, print_json, print_table, with_pool
from idp.db import signing_keys
from idp.keys.crypto import public_pem
from idp.keys.manager import KeyManager
from idp.settings import Settings

# One line, for --force: what a forced rotation may cause, and what bounds it.
FORCED_WARNING = (
    "idp: warning: rotated with --force: verifiers that cached the JWKS before the new key was "
    "published meet an unknown kid and fetch the JWKS again (jwks-rsa does so at most 10 times "
    "a minute; more rotations within a minute can exceed that)"
)


async def list_keys(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    rows = [
        {
            "kid": key.kid,
            "alg": key.alg,
            "state": key.state,
            "created_at": iso(key.created_at),
            "activated_at": iso(key.activated_at),
            "retired_at": iso(key.retired_at),
            "revoked_at": iso(key.revoked_at),
            "revoked_reason": key.revoked_reason,
        }
        for key in await admin_keys.list_keys(pool)
    ]
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ["KID", "ALG", "STATE", "CREATED", "ACTIVATED", "ENDED"],
        [
            [
                row["kid"],
                row["alg"],
                row["state"],
                row["created_at"],
                row["activated_at"],
                row["revoked_at"] or row["retired_at"],
            ]
            for row in rows
        ],
    )
    return 0


async def rotate(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    rotation = await admin_keys.rotate(
        KeyManager(pool, settings, SystemClock()), actor=actor(), force=args.force
    )
    if rotation.forced:
        print(FORCED_WARNING, file=sys.stderr)
    print(rotation.kid)
    return 0


async def export(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
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


async def revoke(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    await admin_keys.check_revocable(pool, None if args.all else args.kid, args.reason)
    target = "EVERY signing key" if args.all else f"signing key {args.kid}"
    if not args.yes and not _confirm(
        f"Revoke {target}? Tokens it signed stop verifying everywhere. Type 'yes' to confirm: ",
        sys.stdin,
    ):
        raise UserError("not confirmed; nothing revoked")
    manager = KeyManager(pool, settings, SystemClock())
    applied = await admin_keys.revoke(
        manager, pool, None if args.all else args.kid, args.reason, actor=actor()
    )
    for item in applied:
        print(f"{type(item.transition).__name__.lower():<9} {item.kid}")
    return 0


def _one_target(args: argparse.Namespace) -> str | None:
    """A usage error unless exactly one of KID and --all is given."""
    return None if (args.kid is None) == bool(args.all) else "name exactly one KID, or --all"


def add_revoke_arguments(parser: argparse.ArgumentParser) -> None:
    """``idp keys revoke`` and ``scripts/revoke-key`` (no "-h": a kid may start with "-h")."""
    parser.add_argument("--help", action="help", help="show this help message and exit")
    parser.add_argument("kid", nargs="?", metavar="KID", help="the key to revoke")
    parser.add_argument("--all", action="store_true", help="revoke every key and start afresh")
    parser.add_argument(
        "--reason", required=True, metavar="TEXT", help="why; kept in the audit log (required)"
    )
    parser.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (default: ask on stdin)"
    )
    parser.set_defaults(identifier="kid", required=False, check=_one_target, run=with_pool(revoke))


def add_parsers(commands: Any) -> None:
    group = commands.add_parser(
        "keys", help="signing keys: list, rotate, export, revoke"
    ).add_subparsers(dest="keys", required=True, metavar="COMMAND")

    listing = group.add_parser("list", help="every key: kid, algorithm, state and when")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    listing.set_defaults(run=with_pool(list_keys))

    rotating = group.add_parser(
        "rotate",
        help="a new key signs from now; prints its kid",
        description="The pending key signs from now (a fresh one if there is none); the previous "
        "key stays published as retiring until its tokens expire. Refused, with when to try "
        "again, while the pending key is younger than IDP_JWKS_MAX_AGE + IDP_CLOCK_SKEW + "
        "IDP_KEY_CHECK_INTERVAL or the active key younger than a minute.",
    )
    rotating.add_argument(
        "--force",
        action="store_true",
        help="rotate now even then: verifiers that cached the JWKS before the new key was "
        "published refetch it on meeting its kid; prints a warning and records 'forced' in the "
        "audit log",
    )
    rotating.set_defaults(run=with_pool(rotate))

    exporting = group.add_parser(
        "export", help="a key's public half, for verifiers configured with a PEM", add_help=False
    )
    exporting.add_argument("--help", action="help", help="show this help message and exit")
    exporting.add_argument("kid", nargs="?", metavar="KID", help="the key to export")
    exporting.add_argument(
        "--pem", action="store_true", required=True, help="as a PEM public key (required)"
    )
    exporting.set_defaults(identifier="kid", required=True, run=with_pool(export))

    add_revoke_arguments(
        group.add_parser(
            "revoke",
            help="incident response: unpublish a key in every process now",
            description="The key leaves the JWKS of every idp process at once; if it was "
            "active, another key signs from the same instant. Tokens it signed stop verifying.",
            add_help=False,
        )
    )
