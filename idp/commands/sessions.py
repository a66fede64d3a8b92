"""``idp sessions revoke --user EMAIL``: cut a user off now (a stolen laptop, a departure)."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from idp.admin import user_sessions
from idp.admin import users as admin_users
from idp.clock import SystemClock
from idp.commands.common import actor, with_pool
from idp.settings import Settings
from idp.terminal import printable


async def revoke(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    """Every session of the user ends (idp.admin.user_sessions.end_all)."""
    user = await admin_users.by_email(pool, args.user)
    async with pool.acquire() as connection:
        revoked = await user_sessions.end_all(
            connection,
            user.id,
            settings=settings,
            clock=SystemClock(),
            actor=actor(),
            reason=args.reason,
        )
    print(f"{printable(user.email)}: {revoked.summary()}")
    return 0


def add_parsers(commands: Any) -> None:
    group = commands.add_parser("sessions", help="sign-in sessions: revoke").add_subparsers(
        dest="sessions", required=True, metavar="COMMAND"
    )
    revoking = group.add_parser(
        "revoke",
        help="end every session and refresh token of a user, now",
        description="End every sign-in session of a user, revoke their refresh tokens and "
        "deny-list the access tokens issued from them (a stolen laptop, a departure).",
    )
    revoking.add_argument("--user", required=True, metavar="EMAIL", help="whose (required)")
    revoking.add_argument(
        "--reason",
        default="sessions revoked by an operator",
        metavar="TEXT",
        help="kept in the audit log (default: %(default)s)",
    )
    revoking.set_defaults(run=with_pool(revoke))
