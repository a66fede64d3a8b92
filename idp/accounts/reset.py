"""Forgotten passwords: a link by mail, then a new password that ends everything the old one
opened.

Asking for a link must not tell whether an address has an account (the issue's enumeration
rule): the page answers the same, at once, counting the request against the address and the
client IP either way (``within_limits``); ``send_link`` then runs in the background
(idp.background), so the answer never waits on the lookup, the token or the mail.

A reset proves the address (the link went to it) and ends every session and refresh family of
the user, with their access tokens deny-listed: whoever knew the old password keeps nothing
(NIST SP 800-63B §6.1.2.3; RFC 9700 §4.14)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from idp.accounts import mail_tokens
from idp.accounts.credentials import hash_new_password, store_password
from idp.accounts.rate_limit import Limit, allowed
from idp.audit_trail import audited
from idp.db import grants, users
from idp.db.mail_tokens import MailTokenRow
from idp.db.pool import Connection
from idp.db.users import User
from idp.mail.outbox import Mailing
from idp.passwords import Passwords

PURPOSE: mail_tokens.Purpose = "reset_password"
LINK_MINUTES = int(mail_tokens.TTL[PURPOSE].total_seconds() // 60)
# A person who lost their password asks a few times at most; more is someone else's doing.
ADDRESS_LIMIT = Limit("forgot-email", 5, timedelta(hours=1))
# Generous per IP: many people may share one address (an office, a carrier's NAT).
IP_LIMIT = Limit("forgot-ip", 30, timedelta(hours=1))
# RFC 5321 §4.5.3.1.3: a path holds at most 256 octets, 254 of them the address.
MAX_ADDRESS = 254
_ADDRESS = re.compile(r"[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+")


class ResetLinkError(Exception):
    """The link's token is unknown, used, expired, for another purpose, or its user is gone."""


@dataclass(frozen=True)
class Reset:
    user: User
    resume: dict[str, Any] | None  # the authorization request to go back to, if any


def address(text: str | None) -> str | None:
    """The address typed in the form, if it looks like one; what is refused here is refused
    for its shape alone, whatever accounts exist."""
    text = (text or "").strip()
    return text if len(text) <= MAX_ADDRESS and _ADDRESS.fullmatch(text) else None


async def within_limits(pool: asyncpg.Pool, email: str, ip: str, now: datetime) -> bool:
    """Count the request; False when the address or the IP asked too often. Counted whether or
    not the address has an account, so a refusal says nothing of it."""
    return await allowed(pool, now, (IP_LIMIT, ip), (ADDRESS_LIMIT, email))


async def send_link(
    pool: asyncpg.Pool,
    *,
    email: str,
    ip: str,
    now: datetime,
    resume: dict[str, Any] | None,
    mailing: Mailing,
) -> None:
    """The reset link, to the account at ``email`` if there is one that may sign in: its token
    and its mail in one transaction. An unknown address gets nothing (it is only audited)."""
    async with pool.acquire() as connection, audited(connection) as trail:
        user = await users.by_email(connection, email)
        if user is None or user.disabled:
            why = "no account" if user is None else "user disabled"
            await trail.record(
                now=now,
                actor="anonymous",
                action="password.reset_requested",
                reason=why,
                details={"ip": ip},
            )
            return
        await mail_reset_link(connection, mailing, user, now, resume=resume)
        await trail.record(
            now=now,
            actor="anonymous",
            action="password.reset_requested",
            subject=str(user.id),
            details={"ip": ip},
        )


async def mail_reset_link(
    connection: Connection,
    mailing: Mailing,
    user: User,
    now: datetime,
    *,
    resume: dict[str, Any] | None = None,
) -> None:
    """A new reset token for ``user`` and the mail with its link, queued in the caller's
    transaction (the forgotten-password page, and an operator's ``reset-mail``)."""
    await mail_tokens.mail_link(
        connection,
        mailing,
        PURPOSE,
        user.id,
        user.email,
        "reset_password",
        now,
        resume=resume,
        name=user.name,
        expires_minutes=LINK_MINUTES,
    )


async def open_link(pool: asyncpg.Pool, token: str | None, now: datetime) -> MailTokenRow | None:
    """The live reset token behind a link, changing nothing (the page's GET)."""
    return await mail_tokens.peek(pool, token, PURPOSE, now)


async def complete_reset(
    pool: asyncpg.Pool,
    passwords: Passwords,
    link: MailTokenRow,
    *,
    token: str | None,
    password: str,
    now: datetime,
    min_length: int,
    deny_until: datetime,
    ip: str,
    mailing: Mailing,
) -> Reset:
    """Set the new password of ``link``'s user (``open_link`` of ``token``), using the token.

    PasswordRejectedError (nothing used) if the policy refuses it; ResetLinkError if the token
    was used meanwhile or the user cannot sign in. Otherwise, in one transaction: the token
    used, the password stored (other mailed links voided, the sign-in lock cleared, the
    ``password_changed`` notice queued), every session and refresh family ended with their
    access tokens deny-listed until ``deny_until``, and the address marked verified."""
    hashed = await hash_new_password(passwords, password, email=link.email, min_length=min_length)
    async with pool.acquire() as connection, audited(connection) as trail:
        used = await mail_tokens.redeem(connection, token, PURPOSE, now)
        user = None if used is None else await users.by_id(connection, used.user_id)
        if used is None or user is None or user.disabled:
            raise ResetLinkError  # rolls the use back: a disabled user's link stays unusable
        await store_password(connection, user, hashed, now, mailing=mailing)
        revoked = await grants.revoke_user_grants(
            connection, user.id, now, deny_until, reason="password reset"
        )
        await users.mark_verified(connection, user.id, used.email, now)  # the link proved it
        await trail.record(
            now=now,
            actor=f"user:{user.id}",
            action="password.reset_completed",
            subject=str(user.id),
            details={"ip": ip, **revoked.as_details()},
        )
    return Reset(user, used.resume)
