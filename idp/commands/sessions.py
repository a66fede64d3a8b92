"""``idp sessions revoke --user EMAIL``: cut a user off now (a stolen laptop, a departure)."""

from __future__ import annotations

import argparse
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from idp.audit_trail import AuditTrail, audited
from idp.clock import SystemClock
from idp.commands.common import UserError, actor, with_pool
from idp.db import grants, users
from idp.db.grants import RevokedGrants
from idp.db.pool import Connection
from idp.settings import Settings
from idp.terminal import printable


async def revoke_user(
    connection: Connection,
    trail: AuditTrail,
    user_id: uuid.UUID,
    *,
    settings: Settings,
    now: datetime,
    reason: str,
    audit_if_empty: bool = True,
) -> RevokedGrants:
    """End the user's sessions and refresh families in the caller's transaction, and audit it
    in the caller's trail.

    Access tokens issued from the families are deny-listed for the longest lifetime any of them
    can have. ``audit_if_empty=False`` records nothing when there was nothing to end (a side
    effect of another audited command, such as disabling the user).
    """
    revoked = await grants.revoke_user_grants(
        connection, user_id, now, now + settings.deny_list_horizon, reason=reason
    )
    if audit_if_empty or not revoked.empty:
        await trail.record(
            now=now,
            actor=actor(),
            action="sessions.revoked",
            subject=str(user_id),
            reason=reason,
            details=revoked.as_details(),
        )
    return revoked


async def revoke(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    now = SystemClock().now()
    async with pool.acquire() as connection, audited(connection) as trail:
        user = await users.by_email(connection, args.user)
        if user is None:
            raise UserError(f"no user with email {args.user}")
        revoked = await revoke_user(
            connection, trail, user.id, settings=settings, now=now, reason=args.reason
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
