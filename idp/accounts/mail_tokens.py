"""The tokens mails carry: 256 random bits, only their SHA-256 stored, one purpose and one user
each, used once, short-lived, and voided when what they vouch for changes.

A link's GET only looks (``peek``): mail scanners follow links, so only the POST of the form the
page shows uses the token (``redeem``)."""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from idp.db import mail_tokens
from idp.db.mail_tokens import MailTokenRow
from idp.db.pool import Executor
from idp.hashing import digest
from idp.mail.outbox import Mailing

Purpose = Literal["verify_email", "reset_password", "invitation", "change_email"]

TTL: dict[Purpose, timedelta] = {
    "verify_email": timedelta(hours=24),
    "reset_password": timedelta(minutes=30),
    "invitation": timedelta(hours=72),
    "change_email": timedelta(hours=24),
}
# Where each token's link goes (the page that shows its form).
PATHS: dict[Purpose, str] = {
    "verify_email": "/verify-email",
    "reset_password": "/reset-password",
    "invitation": "/accept-invitation",
    "change_email": "/verify-email",
}
# A new password voids what a password reset or an invitation would set; a new address voids
# every link sent to the old one.
VOIDED_BY_PASSWORD: list[Purpose] = ["reset_password", "invitation"]
VOIDED_BY_EMAIL: list[Purpose] = ["verify_email", "reset_password", "invitation", "change_email"]
# A token is 43 base64url characters; anything else is not one (and never reaches the database).
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,128}")


async def issue(
    db: Executor,
    purpose: Purpose,
    user_id: uuid.UUID,
    email: str,
    now: datetime,
    *,
    resume: dict[str, Any] | None = None,
) -> str:
    """A new token for ``purpose``; run it in the transaction that queues its mail."""
    token = secrets.token_urlsafe(32)
    await mail_tokens.insert(
        db,
        token_hash=digest(token),
        purpose=purpose,
        user_id=user_id,
        email=email,
        resume=resume,
        now=now,
        expires_at=now + TTL[purpose],
    )
    return token


async def mail_link(
    db: Executor,
    mailing: Mailing,
    purpose: Purpose,
    user_id: uuid.UUID,
    to: str,
    template: str,
    now: datetime,
    *,
    resume: dict[str, Any] | None = None,
    **context: Any,
) -> None:
    """A new ``purpose`` token for ``user_id`` and the mail ``template`` carrying its ``link``
    to ``to``, in the caller's transaction: both, or neither."""
    token = await issue(db, purpose, user_id, to, now, resume=resume)
    link = mailing.composer.link(PATHS[purpose], token)
    expires_at = now + TTL[purpose]  # as ``issue`` stored it: the mail is useless after it
    await mailing.send(db, template, to, now, link_expires_at=expires_at, link=link, **context)


def _hash(token: str | None) -> bytes | None:
    if token is None or not _TOKEN.fullmatch(token):
        return None
    return digest(token)


def _listed(purposes: Purpose | tuple[Purpose, ...]) -> list[str]:
    return [purposes] if isinstance(purposes, str) else list(purposes)


async def peek(
    db: Executor, token: str | None, purposes: Purpose | tuple[Purpose, ...], now: datetime
) -> MailTokenRow | None:
    """The token's row if it is live and for one of the page's ``purposes``, changing nothing
    (a GET). One statement whatever the purposes: the row says which one the token has."""
    hashed = _hash(token)
    return None if hashed is None else await mail_tokens.live(db, hashed, _listed(purposes), now)


async def redeem(
    db: Executor, token: str | None, purposes: Purpose | tuple[Purpose, ...], now: datetime
) -> MailTokenRow | None:
    """Use the token once: None if it is unknown, used, expired or for another page's
    purpose. Run it in the transaction that does what it allows."""
    hashed = _hash(token)
    return None if hashed is None else await mail_tokens.use(db, hashed, _listed(purposes), now)


async def void(db: Executor, user_id: uuid.UUID, purposes: list[Purpose], now: datetime) -> None:
    await mail_tokens.void(db, user_id, list(purposes), now)
