"""Invitations: an operator adds a person by address (``idp users invite``), and the person sets
their own password from the mail.

An invited user has no password (``password_hash`` NULL) until they accept, so they cannot sign
in: ``Passwords.verify(None, ...)`` fails after the same work as a wrong password. Accepting
proves the address, the mail having gone to it. Inviting again someone who has not accepted
sends a fresh link and voids the earlier one."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from idp.accounts import mail_tokens
from idp.accounts.credentials import hash_new_password, store_password
from idp.audit_trail import AuditTrail, audited
from idp.db import users
from idp.db.pool import Connection
from idp.db.users import User
from idp.mail.outbox import Mailing
from idp.passwords import Passwords

PURPOSE: mail_tokens.Purpose = "invitation"
EXPIRES_HOURS = int(mail_tokens.TTL[PURPOSE].total_seconds() // 3600)
MAX_NAME = 200
NAME_TOO_LONG = f"Use at most {MAX_NAME} characters for your name."
NAME_UNPRINTABLE = "Your name must not contain control characters."


class AlreadyAUserError(Exception):
    """The address belongs to a user who can sign in (or was disabled): nothing to invite."""


class InvitationLinkError(Exception):
    """The link's token is unknown, used, expired, for another purpose, or already accepted."""


class NameRejectedError(ValueError):
    pass


@dataclass(frozen=True)
class Invitation:
    user: User
    again: bool  # a fresh link for someone invited before who had not accepted


def pending(user: User | None) -> bool:
    """Invited and not yet accepted: no password, and not disabled since."""
    return user is not None and user.password_hash is None and not user.disabled


async def invite(
    connection: Connection,
    trail: AuditTrail,
    *,
    email: str,
    name: str | None,
    roles: list[str],
    now: datetime,
    actor: str,
    mailing: Mailing,
) -> Invitation:
    """Create the user without a password (or find them still invited), and queue the mail with
    a new ``invitation`` token. Run it in ``audited(connection)``: all of it, or none."""
    existing = await users.by_email(connection, email)
    if existing is not None and not pending(existing):
        raise AlreadyAUserError(email)
    if existing is None:
        try:
            user = await users.insert(
                connection, email=email, name=name, password_hash=None, roles=roles, now=now
            )
        except users.EmailTakenError:  # invited at this very moment by someone else
            raise AlreadyAUserError(email) from None
    else:
        user = existing
        await mail_tokens.void(connection, user.id, [PURPOSE], now)
    await mail_tokens.mail_link(
        connection,
        mailing,
        PURPOSE,
        user.id,
        user.email,
        "invitation",
        now,
        name=user.name,
        expires_hours=EXPIRES_HOURS,
    )
    again = existing is not None
    await trail.record(
        now=now, actor=actor, action="user.invited", subject=str(user.id), details={"again": again}
    )
    return Invitation(user, again)


async def open_invitation(pool: asyncpg.Pool, token: str | None, now: datetime) -> User | None:
    """The invited user behind a link, if it is live and not accepted, changing nothing (GET)."""
    found = await mail_tokens.peek(pool, token, PURPOSE, now)
    user = None if found is None else await users.by_id(pool, found.user_id)
    return user if pending(user) else None


def clean_name(text: str | None) -> str | None:
    """The name the invitee typed (None when blank); NameRejectedError says what is wrong."""
    name = (text or "").strip()
    if len(name) > MAX_NAME:
        raise NameRejectedError(NAME_TOO_LONG)
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise NameRejectedError(NAME_UNPRINTABLE)
    return name or None


async def accept(
    pool: asyncpg.Pool,
    passwords: Passwords,
    user: User,
    *,
    token: str | None,
    password: str,
    name: str | None,
    now: datetime,
    min_length: int,
    ip: str,
) -> None:
    """Set the first password of ``user`` (``open_invitation`` of ``token``) and their name,
    using the token, and mark the address verified, in one transaction.

    PasswordRejectedError (nothing used) if the policy refuses the password;
    InvitationLinkError if the token was used meanwhile. No ``password_changed`` notice: this
    is the first password, not a change."""
    hashed = await hash_new_password(passwords, password, email=user.email, min_length=min_length)
    async with pool.acquire() as connection, audited(connection) as trail:
        used = await mail_tokens.redeem(connection, token, PURPOSE, now)
        current = None if used is None else await users.by_id(connection, used.user_id)
        if used is None or current is None or not pending(current):
            raise InvitationLinkError
        await store_password(connection, current, hashed, now)
        await users.set_name(connection, current.id, name, now)
        await users.mark_verified(connection, current.id, used.email, now)
        await trail.record(
            now=now,
            actor=f"user:{current.id}",
            action="invitation.accepted",
            subject=str(current.id),
            details={"ip": ip},
        )
