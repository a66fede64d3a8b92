"""Verifying an address: the ``verify_email`` link of a sign-up, and the ``change_email`` link
that confirms a new address. Both open ``/verify-email`` (mail_tokens.PATHS): its GET looks
(``peek``), its POST uses the token (``confirm``).

And the resend of a sign-up's verification mail, for the person the sign-in page told to check
their mail.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from idp.accounts import mail_tokens, rate_limit
from idp.accounts.mail_tokens import Purpose
from idp.accounts.rate_limit import Limit
from idp.accounts.signup import queue_verification
from idp.audit_trail import audited
from idp.db import users
from idp.db.mail_tokens import MailTokenRow
from idp.db.pool import Executor
from idp.db.users import EmailTakenError, User
from idp.mail.outbox import Mailing

# The purposes /verify-email serves: a token is looked up once, for either (its row says which),
# so neither the queries nor their time tell a verification link from an email change's.
PURPOSES: tuple[Purpose, ...] = ("verify_email", "change_email")
# Resend: per address and per client IP (idp.accounts.rate_limit).
RESEND_PER_EMAIL = Limit("resend-email", 3, timedelta(hours=1))
RESEND_PER_IP = Limit("resend-ip", 20, timedelta(hours=1))


class LinkInvalidError(Exception):
    """Unknown, used, expired, voided, or for another page: one refusal for all."""


class AddressTakenError(Exception):
    """The new address of a change got an account of its own meanwhile."""

    def __init__(self, email: str) -> None:
        super().__init__(email)
        self.email = email


class TooManyResendsError(Exception):
    """Over a rate limit."""


@dataclass(frozen=True)
class Confirmed:
    """What a redeemed link did: ``old_email`` is set when the address changed; ``resume`` is
    the authorization request a sign-up came from (idp.web.detour)."""

    user: User
    purpose: Purpose
    resume: dict[str, Any] | None
    old_email: str | None = None


async def peek(db: Executor, token: str | None, now: datetime) -> MailTokenRow | None:
    """The live token of /verify-email named by ``token``, changing nothing (a GET)."""
    return await mail_tokens.peek(db, token, PURPOSES, now)


async def confirm(
    pool: asyncpg.Pool, mailing: Mailing, token: str | None, ip: str, issuer: str, now: datetime
) -> Confirmed:
    """Use the token once and do what it vouches for; LinkInvalidError or AddressTakenError
    otherwise (the token then stays as it was)."""
    async with pool.acquire() as connection, audited(connection) as trail:
        row = await mail_tokens.redeem(connection, token, PURPOSES, now)
        if row is None:
            raise LinkInvalidError
        details = {"ip": ip}
        if row.purpose == "verify_email":
            user = await users.mark_verified(connection, row.user_id, row.email, now)
            if user is None:
                raise LinkInvalidError
            await trail.record(
                now=now, actor=_actor(user.id), action="email.verified", subject=str(user.id),
                details=details,
            )  # fmt: skip
            return Confirmed(user, "verify_email", row.resume)
        old = await users.by_id(connection, row.user_id)
        try:
            user = await users.replace_email(connection, row.user_id, row.email, now)
        except EmailTakenError:
            raise AddressTakenError(row.email) from None
        if old is None or user is None:
            raise LinkInvalidError
        # Every link sent to the old address stops working (the one just used already has).
        await mail_tokens.void(connection, user.id, mail_tokens.VOIDED_BY_EMAIL, now)
        await mailing.send(
            connection,
            "email_changed",
            old.email,
            now,
            name=user.name,
            link=f"{issuer}/account",
            old_email=old.email,
            new_email=user.email,
        )
        await trail.record(
            now=now, actor=_actor(user.id), action="email.changed", subject=str(user.id),
            details={**details, "from": old.email, "to": user.email},
        )  # fmt: skip
        return Confirmed(user, "change_email", row.resume, old_email=old.email)


async def resend(
    pool: asyncpg.Pool,
    mailing: Mailing,
    email: str,
    ip: str,
    now: datetime,
    *,
    resume: dict[str, Any] | None = None,
) -> bool:
    """A fresh verification mail, if ``email`` names an account still waiting for one; whether
    one was queued (for tests and the audit: the caller's answer must not depend on it).
    TooManyResendsError when over a limit, counted whatever the address."""
    email = email.strip()
    if "\x00" in email:  # no address has one (PostgreSQL text cannot even hold it)
        return False
    if not await rate_limit.allowed(pool, now, (RESEND_PER_IP, ip), (RESEND_PER_EMAIL, email)):
        raise TooManyResendsError
    async with pool.acquire() as connection, audited(connection) as trail:
        user = await users.by_email(connection, email)
        if user is None or not user.must_verify_email or user.email_verified or user.disabled:
            return False
        await queue_verification(connection, mailing, user, now, resume=resume)
        await trail.record(
            now=now, actor="anonymous", action="email.verification_resent",
            subject=str(user.id), details={"ip": ip},
        )  # fmt: skip
        return True


def _actor(user_id: uuid.UUID) -> str:
    """The holder of the link speaks for the account (they read its mail)."""
    return f"user:{user_id}"
