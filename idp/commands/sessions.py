"""``idp sessions revoke --user EMAIL``: cut a user off now (a stolen laptop, a departure)."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from idp.admin.sessions import revoke_user_sessions
from idp.audit_trail import audited
from idp.clock import SystemClock
from idp.commands.common import UserError, actor, with_pool
from idp.db import users
from idp.settings import Settings
from idp.terminal import printable


async def revoke(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    now = SystemClock().now()
    async with pool.acquire() as connection, audited(connection) as trail:
        user = await users.by_email(connection, args.user)
        if user is None:
            raise UserError(f"no user with email {args.user}")
        revoked = await revoke_user_sessions(
            connection,
            trail,
            user.id,
            settings=settings,
            now=now,
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
