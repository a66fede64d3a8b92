"""``idp users``: add, invite, list, disable, enable, set-password, roles, mfa-reset.

Each change is one function of the service layer (idp.admin.users), the one the management API
calls too; this module reads the command line and stdin, and prints."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

import asyncpg

from idp.accounts import invitations
from idp.accounts.credentials import PasswordRejectedError, hash_new_password
from idp.admin import users as service
from idp.admin.users import check_roles
from idp.clock import SystemClock
from idp.commands.common import (
    UserError,
    actor,
    iso,
    print_json,
    print_table,
    with_pool,
)
from idp.db import users
from idp.mail.outbox import Mailing
from idp.passwords import Passwords
from idp.settings import Settings
from idp.terminal import printable


def _row(user: users.User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "roles": list(user.roles),
        "disabled": user.disabled,
        "created_at": iso(user.created_at),
    }


def _roles(values: list[str]) -> list[str]:
    """Refused before a password is read, as the service would refuse them."""
    check_roles(values)
    return values


def _email(text: str) -> str:
    if "@" not in text:
        raise UserError(f"{text!r} is not an email address")
    return text


async def _new_password_hash(settings: Settings, email: str) -> str:
    """A password read from stdin (never argv, where other users and shell history see it),
    checked against the policy (NIST SP 800-63B §3.1.1.2) and hashed."""
    line = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline()
    passwords = Passwords(settings.argon2_profile)
    try:
        return await hash_new_password(
            passwords, line.rstrip("\r\n"), email=email, min_length=settings.password_min_length
        )
    except PasswordRejectedError as rejected:
        # One line per rule broken, each as the CLI prints errors ("idp: ...").
        raise UserError("\nidp: ".join(rejected.problems)) from None
    finally:
        passwords.close()


async def add(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    _roles(args.role)
    hashed = await _new_password_hash(settings, _email(args.email))
    async with pool.acquire() as connection:
        user = await service.create(
            connection,
            clock=SystemClock(),
            actor=actor(),
            email=args.email,
            name=args.name,
            password_hash=hashed,
            roles=args.role,
            email_verified=args.verified,
        )
    print(user.id)
    return 0


async def invite(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    async with pool.acquire() as connection:
        invitation = await service.invite(
            connection,
            email=_email(args.email),
            name=args.name,
            roles=_roles(args.role),
            clock=SystemClock(),
            actor=actor(),
            mailing=Mailing.of(settings),
        )
    again = " again (the earlier link no longer works)" if invitation.again else ""
    print(
        f"{printable(invitation.user.email)}: invitation queued{again}; "
        f"its link works for {invitations.EXPIRES_HOURS} hours"
    )
    return 0


async def list_users(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    rows = [_row(user) for user in await users.all_users(pool)]
    if args.json:
        print_json(rows)
    else:
        print_table(
            ["EMAIL", "NAME", "ROLES", "DISABLED", "ID"],
            [
                [row["email"], row["name"], ",".join(row["roles"]), row["disabled"], row["id"]]
                for row in rows
            ],
        )
    return 0


def _set_disabled(disabled: bool) -> Any:
    async def command(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
        user = await service.by_email(pool, args.email)
        async with pool.acquire() as connection:
            await service.set_disabled(
                connection, user.id, disabled, settings=settings, clock=SystemClock(), actor=actor()
            )
        return 0

    return command


async def set_password(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    """A new password ends what the old one opened (idp.admin.users.set_password)."""
    user = await service.by_email(pool, args.email)
    hashed = await _new_password_hash(settings, user.email)
    async with pool.acquire() as connection:
        user, revoked = await service.set_password(
            connection,
            user.id,
            hashed,
            settings=settings,
            clock=SystemClock(),
            actor=actor(),
            mailing=Mailing.of(settings),
        )
    print(f"{printable(user.email)}: password changed; {revoked.summary()}")
    return 0


async def mfa_reset(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    """Every second factor goes (idp.admin.users.reset_second_factors)."""
    user = await service.by_email(pool, args.email)
    async with pool.acquire() as connection:
        user, revoked = await service.reset_second_factors(
            connection,
            user.id,
            settings=settings,
            clock=SystemClock(),
            actor=actor(),
            mailing=Mailing.of(settings),
        )
    print(f"{printable(user.email)}: second factors removed; {revoked.summary()}")
    return 0


async def roles(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> int:
    user = await service.by_email(pool, args.email)
    async with pool.acquire() as connection:
        user = await service.change_roles(
            connection, user, add=args.add, remove=args.remove, clock=SystemClock(), actor=actor()
        )
    print(printable(" ".join(user.roles)))
    return 0


POLICY = (
    "at least IDP_PASSWORD_MIN_LENGTH characters (default 12), not one of the most common "
    "passwords, not containing the address's name"
)


def _profile_arguments(parser: argparse.ArgumentParser) -> None:
    """What a new user is given, by ``add`` and ``invite`` alike."""
    parser.add_argument("--name", metavar="NAME", help="the name claim (default: none)")
    parser.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="ROLE",
        help="a role, issued in the roles claim; one word, repeat for several (default: none)",
    )


def add_parsers(commands: Any) -> None:
    group = commands.add_parser(
        "users", help="people who sign in: add, invite, list, disable, enable, set-password, roles"
    ).add_subparsers(dest="users", required=True, metavar="COMMAND")
    adding = group.add_parser(
        "add",
        help="add a user; the password is read from stdin",
        description="Add a user. The password is read from stdin (typed, hidden, on a "
        "terminal), never from the command line, where other users and shell history see it.",
    )
    adding.add_argument("email", metavar="EMAIL", help="what the user signs in with")
    _profile_arguments(adding)
    adding.add_argument(
        "--password-stdin",
        action="store_true",
        required=True,
        help=f"read the password from stdin (required); {POLICY}",
    )
    adding.add_argument(
        "--verified",
        action="store_true",
        help="the address is known to be the user's: email_verified is true in their tokens",
    )
    adding.set_defaults(run=with_pool(add))

    inviting = group.add_parser(
        "invite",
        help="add a user without a password and mail them a link to set one",
        description="Add a user without a password and queue a mail with a link (valid "
        f"{invitations.EXPIRES_HOURS} hours) where they choose their own; until then they "
        "cannot sign in. Inviting again someone who has not accepted yet sends a new link "
        "and voids the earlier one (their name and roles stay as first given).",
    )
    inviting.add_argument("email", metavar="EMAIL", help="where the invitation goes")
    _profile_arguments(inviting)
    inviting.set_defaults(run=with_pool(invite))

    listing = group.add_parser("list", help="every user")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    listing.set_defaults(run=with_pool(list_users))

    for name, disabled, what in (
        (
            "disable",
            True,
            "the user can no longer sign in; their sessions and tokens end now (refused for "
            "the last enabled user with the admin role)",
        ),
        ("enable", False, "the user may sign in again"),
    ):
        toggle = group.add_parser(name, help=what)
        toggle.add_argument("email", metavar="EMAIL", help="the user")
        toggle.set_defaults(run=with_pool(_set_disabled(disabled)))

    password = group.add_parser(
        "set-password",
        help="a new password, read from stdin; ends the user's sessions and refresh tokens",
        description="Set a new password, read from stdin. In the same transaction it ends "
        "every session of the user, revokes their refresh tokens and deny-lists the access "
        "tokens issued from them, as 'idp sessions revoke' does: they sign in again with the "
        "new password.",
    )
    password.add_argument("email", metavar="EMAIL", help="the user")
    password.add_argument(
        "--password-stdin",
        action="store_true",
        required=True,
        help=f"read the password from stdin (required); {POLICY}",
    )
    password.set_defaults(run=with_pool(set_password))

    resetting = group.add_parser(
        "mfa-reset",
        help="remove every second factor of a user who lost them; ends their sessions",
        description="Remove the user's authenticator app and recovery codes, for someone who "
        "lost both. In the same transaction it ends every session of the user and revokes "
        "their refresh tokens, as 'idp sessions revoke' does; the user is told by mail. "
        "Audited as mfa.reset.",
    )
    resetting.add_argument("email", metavar="EMAIL", help="the user")
    resetting.set_defaults(run=with_pool(mfa_reset))

    role = group.add_parser(
        "roles",
        help="add or remove roles (the roles claim); prints the user's roles",
        description="Add or remove roles (the roles claim); a role both added and removed is "
        "removed. The admin role is not taken from the last enabled user holding it (admin "
        "clients do not count): give it to another user first.",
    )
    role.add_argument("email", metavar="EMAIL", help="the user")
    role.add_argument(
        "--add", action="append", default=[], metavar="ROLE", help="repeat for several"
    )
    role.add_argument(
        "--remove", action="append", default=[], metavar="ROLE", help="repeat for several"
    )
    role.set_defaults(run=with_pool(roles))
