"""What a signed-in person changes of their own account: their name, their address (by a link
mailed to the new one) and their password (the current one required).

A change that needs the current password checks it with ``idp.signin.authenticate``, the very
check the sign-in page makes: a wrong password here is a failed sign-in of the account (audited
as ``login.failed``, counted toward its lock), so a stolen session cookie gives an attacker no
extra guesses at the password. A right one is audited as ``account.reauthenticated``: no sign-in
happened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from idp.accounts import credentials, mail_tokens
from idp.accounts.account_sessions import end_others_in
from idp.accounts.credentials import PasswordRejectedError
from idp.accounts.rate_limit import Limit, allowed
from idp.accounts.services import Services
from idp.audit_trail import audited
from idp.db import users
from idp.db.users import User
from idp.devices import DeviceCookies
from idp.signin import SignInFailedError, SignInLockedError, authenticate

NAME_MAX = 100
EMAIL_MAX = 254  # RFC 5321 §4.5.3.1.3: the longest path is 256 octets, brackets included
# One address, roughly: something, an @, a domain with a dot; the mailed link proves the rest.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# A person asking for one change of address after another only fills someone's mailbox.
EMAIL_CHANGES = Limit("email-change-user", hits=5, window=timedelta(hours=1))

NAME_TOO_LONG = f"Use at most {NAME_MAX} characters for your name."
NAME_UNPRINTABLE = "Your name may contain only printable characters."
EMAIL_INVALID = "Enter an email address like name@example.com."
EMAIL_SAME = "That is already your email address."
EMAIL_TOO_OFTEN = "Too many address changes were asked for. Try again in an hour."
WRONG_CURRENT = "Your current password is not correct."
PASSWORDS_DIFFER = "The new password and its confirmation differ."


class ProfileError(Exception):
    """A change refused; ``messages`` are fixed texts to show (never the input), one per rule."""

    def __init__(self, *messages: str, status_code: int = 400) -> None:
        super().__init__(" ".join(messages))
        self.messages = list(messages)
        self.status_code = status_code


@dataclass(frozen=True)
class Proof:
    """The current password as a form gave it, with what a sign-in is throttled by."""

    password: str
    ip: str
    device_cookie: str | None
    devices: DeviceCookies


def clean_name(raw: str | None) -> str | None:
    """The name to store: trimmed, printable, bounded; None (no name) when left empty."""
    name = " ".join((raw or "").split())
    if len(name) > NAME_MAX:
        raise ProfileError(NAME_TOO_LONG)
    if not name.isprintable():
        raise ProfileError(NAME_UNPRINTABLE)
    return name or None


def clean_email(raw: str | None) -> str:
    address = (raw or "").strip()
    if len(address) > EMAIL_MAX or not address.isprintable() or not _EMAIL.fullmatch(address):
        raise ProfileError(EMAIL_INVALID)
    return address


async def change_name(services: Services, user: User, raw: str | None, now: datetime) -> None:
    name = clean_name(raw)
    async with services.pool.acquire() as connection, audited(connection) as trail:
        if await users.set_name(connection, user.id, name, now):
            await trail.record(
                now=now, actor=f"user:{user.id}", action="account.name_changed",
                subject=str(user.id),
            )  # fmt: skip


async def confirm_password(services: Services, user: User, proof: Proof, now: datetime) -> User:
    """The user as the sign-in check found them, if ``proof`` holds their current password."""
    try:
        found = await authenticate(
            services.pool,
            services.passwords,
            email=user.email,
            password=proof.password,
            ip=proof.ip,
            now=now,
            device_cookie=proof.device_cookie,
            devices=proof.devices,
            recheck=True,
        )
    except SignInLockedError as locked:
        minutes = max(1, round((locked.until - now).total_seconds() / 60))
        unit = "minute" if minutes == 1 else "minutes"
        text = f"Too many wrong passwords. Wait {minutes} {unit} and try again."
        raise ProfileError(text, status_code=429) from None
    except SignInFailedError:
        raise ProfileError(WRONG_CURRENT) from None
    if found.id != user.id:  # the address moved to another account in between
        raise ProfileError(WRONG_CURRENT)
    return found


async def request_email_change(
    services: Services, user: User, raw_address: str | None, proof: Proof, now: datetime
) -> None:
    """Mail a ``change_email`` link to the new address; the address changes only when that
    link's form is posted (``/verify-email``). A new request voids the links of earlier ones.

    An address that already has an account gets no link but a notice that nothing changed,
    and the requester is told the same as for a free address: the page reveals no account.
    """
    address = clean_email(raw_address)
    if address.casefold() == user.email.casefold():
        raise ProfileError(EMAIL_SAME)
    await confirm_password(services, user, proof, now)
    if not await allowed(services.pool, now, (EMAIL_CHANGES, str(user.id))):
        raise ProfileError(EMAIL_TOO_OFTEN, status_code=429)  # counted even when refused
    mailing = services.mailing
    async with services.pool.acquire() as connection, audited(connection) as trail:
        await mail_tokens.void(connection, user.id, ["change_email"], now)
        owner = await users.by_email(connection, address)
        if owner is None:
            await mail_tokens.mail_link(
                connection, mailing, "change_email", user.id, address, "email_change", now,
                name=user.name,
            )  # fmt: skip
        else:
            link = f"{services.settings.issuer}/forgot-password"  # the owner may have forgotten
            await mailing.send(
                connection, "email_change_taken", address, now, name=owner.name, link=link
            )
        await trail.record(
            now=now,
            actor=f"user:{user.id}",
            action="account.email_change_requested",
            subject=str(user.id),
            reason="address taken: notice sent" if owner is not None else None,
            details={"to": address},
        )


async def change_password(
    services: Services,
    user: User,
    proof: Proof,
    new_password: str | None,
    confirmation: str | None,
    *,
    keep_sid: str,
    now: datetime,
) -> User:
    """Set a new password (NIST SP 800-63B §3.1.1.2 policy), mail the owner a notice (§6.1.2.3)
    and end every other session of the user with what it started: whoever else knew the old
    password is signed out. This browser stays signed in; refresh families started by it stay
    too (Keycloak's "sign out other devices"; a reset, which proves no current password,
    revokes them all). Returns the user with the new hash."""
    await confirm_password(services, user, proof, now)
    if (new_password or "") != (confirmation or ""):
        raise ProfileError(PASSWORDS_DIFFER)
    try:
        hashed = await credentials.hash_new_password(
            services.passwords,
            new_password or "",
            email=user.email,
            min_length=services.settings.password_min_length,
        )
    except PasswordRejectedError as rejected:
        raise ProfileError(*rejected.problems) from None
    async with services.pool.acquire() as connection, audited(connection) as trail:
        await credentials.store_password(connection, user, hashed, now, mailing=services.mailing)
        ended = await end_others_in(
            services, connection, trail, user.id, keep_sid, now, why="password changed"
        )
        await trail.record(
            now=now,
            actor=f"user:{user.id}",
            action="account.password_changed",
            subject=str(user.id),
            details={"sessions_ended": len(ended)},
        )
    return replace(user, password_hash=hashed)
