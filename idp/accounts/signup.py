"""Signing up: a new account that cannot sign in until its address is verified.

The answer never says whether the address already has an account (OWASP ASVS 4.0 §2.2.x;
NIST SP 800-63B §5.2.2 asks to limit what an attacker learns): a new address gets an account
and a verification mail, a known one gets a mail to its owner instead, and both cost a password
hash and a few statements. Only the owner of the address learns which case it was, by mail.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from idp.accounts import credentials, mail_tokens, password_policy, rate_limit
from idp.accounts.rate_limit import Limit
from idp.audit_trail import AuditTrail, audited
from idp.db import users
from idp.db.pool import Connection
from idp.db.users import EmailTakenError, User
from idp.mail.outbox import Mailing
from idp.passwords import Passwords
from idp.settings import Settings

# Per client IP and per address, whether or not it has an account (idp.accounts.rate_limit).
PER_IP = Limit("signup-ip", 20, timedelta(hours=1))
PER_EMAIL = Limit("signup-email", 5, timedelta(hours=1))
# RFC 5321 §4.5.3.1: a path holds at most 256 octets, so an address at most 254 characters.
MAX_EMAIL = 254
MAX_NAME = 200
_EMAIL = re.compile(r"[^@\s<>\x00-\x1f\x7f]+@[^@\s<>\x00-\x1f\x7f]+\.[^@\s<>\x00-\x1f\x7f]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

BAD_EMAIL = "Enter your email address, like name@example.com."
BAD_NAME = f"Enter your name without control characters, in at most {MAX_NAME} characters."


class RegistrationClosedError(Exception):
    """``IDP_REGISTRATION`` is ``closed``: nobody signs up."""


class SignUpInvalidError(ValueError):
    """What the form must fix, one message per field in error (``problems`` by field name)."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        super().__init__("; ".join(" ".join(texts) for texts in problems.values()))
        self.problems = problems


class TooManyAttemptsError(Exception):
    """Over a rate limit: the same refusal whatever the address."""


@dataclass(frozen=True)
class SignUpForm:
    email: str
    name: str
    password: str
    ip: str
    # What the verification restarts (idp.web.detour); None: nothing to go back to.
    resume: dict[str, Any] | None = None


def checked_fields(form: SignUpForm, min_length: int) -> tuple[str, str | None]:
    """The address and the name as stored (trimmed; an empty name is none);
    SignUpInvalidError naming each field in error, the password's too when another field is
    (``sign_up`` checks it again as it hashes it): one round trip shows every problem."""
    email, name = form.email.strip(), form.name.strip()
    problems: dict[str, list[str]] = {}
    if len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email):
        problems["email"] = [BAD_EMAIL]
    if len(name) > MAX_NAME or _CONTROL.search(name):
        problems["name"] = [BAD_NAME]
    if problems:
        rejected = password_policy.problems(form.password, email=email, min_length=min_length)
        raise SignUpInvalidError(problems | ({"password": rejected} if rejected else {}))
    return email, name or None


async def sign_up(
    pool: asyncpg.Pool,
    passwords: Passwords,
    mailing: Mailing,
    settings: Settings,
    form: SignUpForm,
    now: datetime,
) -> None:
    """Create the account, or tell the address's owner; the same outcome to the caller either
    way. Raises RegistrationClosedError, SignUpInvalidError (with the password policy's
    messages, NIST SP 800-63B §3.1.1.2), or TooManyAttemptsError."""
    if settings.registration != "open":
        raise RegistrationClosedError
    email, name = checked_fields(form, settings.password_min_length)
    if not await rate_limit.allowed(pool, now, (PER_IP, form.ip), (PER_EMAIL, email)):
        raise TooManyAttemptsError
    try:
        # Hashed for known addresses too: both answers cost the same.
        hashed = await credentials.hash_new_password(
            passwords, form.password, email=email, min_length=settings.password_min_length
        )
    except credentials.PasswordRejectedError as rejected:
        raise SignUpInvalidError({"password": rejected.problems}) from None
    async with pool.acquire() as connection:
        try:
            async with audited(connection) as trail:
                existing = await users.by_email(connection, email)
                if existing is None:
                    await _create(connection, trail, mailing, form, email, name, hashed, now)
                    return
                await _tell_owner(connection, trail, mailing, settings, existing, form, now)
        except EmailTakenError:  # signed up at the same moment by another request
            async with audited(connection) as trail:
                existing = await users.by_email(connection, email)
                if existing is not None:
                    await _tell_owner(connection, trail, mailing, settings, existing, form, now)


async def _create(
    connection: Connection,
    trail: AuditTrail,
    mailing: Mailing,
    form: SignUpForm,
    email: str,
    name: str | None,
    hashed: str,
    now: datetime,
) -> None:
    user = await users.insert(
        connection,
        email=email,
        name=name,
        password_hash=hashed,
        roles=[],
        now=now,
        email_verified=False,
        must_verify_email=True,
    )
    await queue_verification(connection, mailing, user, now, resume=form.resume)
    await _audit(trail, now, "signup.created", user.id, form.ip)


async def _tell_owner(
    connection: Connection,
    trail: AuditTrail,
    mailing: Mailing,
    settings: Settings,
    owner: User,
    form: SignUpForm,
    now: datetime,
) -> None:
    """An unverified sign-up gets its verification mail again (they may have lost it); any
    other account a "someone tried to sign up with your address" notice."""
    if owner.must_verify_email and not owner.email_verified:
        await queue_verification(connection, mailing, owner, now, resume=form.resume)
        await _audit(trail, now, "signup.verification_resent", owner.id, form.ip)
        return
    await mailing.send(
        connection,
        "signup_existing",
        owner.email,
        now,
        name=owner.name,
        link=f"{settings.issuer}/forgot-password",
        sign_in_link=f"{settings.issuer}/account",
    )
    await _audit(trail, now, "signup.existing_address", owner.id, form.ip)


async def queue_verification(
    connection: Connection,
    mailing: Mailing,
    user: User,
    now: datetime,
    *,
    resume: dict[str, Any] | None,
) -> None:
    """A ``verify_email`` token and its mail, in the caller's transaction."""
    hours = int(mail_tokens.TTL["verify_email"].total_seconds() // 3600)
    await mail_tokens.mail_link(
        connection,
        mailing,
        "verify_email",
        user.id,
        user.email,
        "verify_email",
        now,
        resume=resume,
        name=user.name,
        hours=hours,
    )


async def _audit(
    trail: AuditTrail, now: datetime, action: str, user_id: uuid.UUID, ip: str
) -> None:
    """Who and from where; never the password."""
    await trail.record(
        now=now, actor="anonymous", action=action, subject=str(user_id), details={"ip": ip}
    )
