"""A new password, the one way: checked against the policy, hashed off the event loop, stored,
with every mailed link that could set another voided, the account's sign-in lock cleared, and
the owner told by mail. Sign-up, reset, invitation, the account page and the CLI all use it."""

from __future__ import annotations

from datetime import datetime

from idp.accounts import mail_tokens
from idp.accounts.password_policy import problems
from idp.db import login_failures, users
from idp.db.pool import Connection
from idp.db.users import User
from idp.mail.outbox import Mailing
from idp.passwords import Passwords


class PasswordRejectedError(ValueError):
    """The password breaks the policy; ``problems`` are the messages to show, one per rule."""

    def __init__(self, found: list[str]) -> None:
        super().__init__(" ".join(found))
        self.problems = found


async def hash_new_password(
    passwords: Passwords, password: str, *, email: str, min_length: int
) -> str:
    """The argon2id hash of an acceptable new password; PasswordRejectedError otherwise."""
    found = problems(password, email=email, min_length=min_length)
    if found:
        raise PasswordRejectedError(found)
    return await passwords.hash(password)


async def store_password(
    connection: Connection,
    user: User,
    password_hash: str,
    now: datetime,
    *,
    mailing: Mailing | None = None,
) -> None:
    """Run it in the caller's transaction. With ``mailing``, the owner gets the
    ``password_changed`` notice (NIST SP 800-63B §6.1.2.3 asks to notify of such changes)."""
    await users.set_password_hash(connection, user.id, password_hash, now)
    await mail_tokens.void(connection, user.id, mail_tokens.VOIDED_BY_PASSWORD, now)
    await login_failures.clear_account(connection, user.email)
    if mailing is not None:
        await mailing.send(connection, "password_changed", user.email, now, name=user.name)
