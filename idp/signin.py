"""Signing in: password checks with brute-force protection, and sessions.

Protection (stored in PostgreSQL, so every process sees it) follows OWASP's device cookies: a
browser that signed a user in carries a device cookie for that user (idp.devices).

* An attempt with a valid device cookie for the account being tried is throttled by that cookie
  alone: its failures count against the cookie's nonce, and neither the account's nor the client
  IP's lock applies to it. So guesses from elsewhere never lock the owner's usual browser out,
  even behind an address shared with the attacker (NAT, VPN). A cookie locked by its own
  failures is refused, not treated as absent: a stolen copy adds one more throttle of the same
  rate, on that one account.
* Any other attempt counts against the account and the client IP, and is refused while either is
  locked: an attacker gets the same few guesses per account whatever addresses they use.

Each key allows ``FREE_ATTEMPTS`` failures within ``WINDOW``; the next one locks it for
``FIRST_LOCK``, doubling with every further failure up to ``MAX_LOCK``, and refusals while locked
check no password and count nothing. An attempt is counted against the account (or device
cookie), and the lock it earns set, before its password is checked (``login_failures.claim``),
so guesses at an account sent all at once get no more checks than guesses sent one by one; the
price is that a seventh sign-in of one account while six are being checked is refused until one
of them ends. The client IP counts failures only, after the check: people signing in at once
behind one address are never refused for it. So a key yields 6 guesses in a first minute, then
about one per lock, and at most about 6 per quarter of an hour in the long run. A success
clears the counter of the key it was throttled by: with a device cookie that is the cookie's,
so the owner signing in does not hand an attacker of the account new free attempts.

The account key is the email as PostgreSQL folds its case (``users.for_sign_in``), the folding
the users table's unique index uses: no other spelling of an address reaches its account while
escaping its counter.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import asyncpg

from idp.audit_trail import AuditTrail, audited
from idp.db import login_failures, second_factors, sessions, users
from idp.db.authorization_codes import PASSWORD_ONLY
from idp.db.users import User
from idp.devices import DeviceCookies
from idp.hashing import digest
from idp.oauth.code_flow import SignedIn
from idp.passwords import Passwords

FREE_ATTEMPTS = 5
WINDOW = timedelta(minutes=15)
FIRST_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=15)


class SignInFailedError(Exception):
    """Wrong password, unknown email or disabled user: one error, one text, the same work."""


class EmailNotVerifiedError(Exception):
    """The right password of an account that signed up and has not verified its address yet:
    raised only after the password is checked, so only its holder learns it."""

    def __init__(self, user: User) -> None:
        super().__init__("the address is not verified")
        self.user = user


class SecondFactorRequiredError(Exception):
    """The right password of a user with a second factor: no session yet (idp.mfa.challenge).
    ``account`` is the key the password was throttled by, for the second step to count on."""

    def __init__(self, user: User, account: str) -> None:
        super().__init__("a second factor is required")
        self.user = user
        self.account = account


class SignInLockedError(Exception):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"locked until {until.isoformat()}")
        self.until = until


def lock_duration(failures: int) -> timedelta | None:
    if failures <= FREE_ATTEMPTS:
        return None
    factor = 1 << min(failures - FREE_ATTEMPTS - 1, 16)
    return min(FIRST_LOCK * factor, MAX_LOCK)


def _locks() -> list[timedelta]:
    """``lock_duration`` of each count past the free ones, up to the first ``MAX_LOCK``: the
    table ``login_failures.claim`` sets locks from (counts past its end get its last)."""
    locks: list[timedelta] = []
    while not locks or locks[-1] < MAX_LOCK:
        duration = lock_duration(FREE_ATTEMPTS + len(locks) + 1)
        assert duration is not None
        locks.append(duration)
    return locks


LOCKS = _locks()


@dataclass(frozen=True)
class NewSession:
    cookie: str  # the random value for the cookie; only its digest is stored
    sid: str
    user: User
    auth_time: datetime
    amr: tuple[str, ...] = PASSWORD_ONLY

    def signed_in(self) -> SignedIn:
        return SignedIn(user_id=self.user.id, sid=self.sid, auth_time=self.auth_time, amr=self.amr)


async def authenticate(
    pool: asyncpg.Pool,
    passwords: Passwords,
    *,
    email: str,
    password: str,
    ip: str,
    now: datetime,
    device_cookie: str | None = None,
    devices: DeviceCookies | None = None,
    recheck: bool = False,
) -> User:
    """The user whose password this is. In a sign-in, a user who has a second factor is not
    signed in by the password alone: SecondFactorRequiredError, and the attempt claimed stays
    counted until the second factor is given, so that an attacker who holds the password gets
    no fresh guesses at the code by typing the password again.

    A ``recheck`` is the password of a signed-in user asked again before a sensitive change
    (the account page): no second factor is asked, and its success is audited as
    ``account.reauthenticated``, not as a sign-in (no session starts). Its failures are failed
    sign-ins all the same, counted toward the same locks."""
    # PostgreSQL text cannot hold NUL: such an email names nobody and is counted by IP only.
    account, user = (
        (None, None) if "\x00" in email else await users.for_sign_in(pool, email.strip())
    )
    keys = throttle_keys(account, ip, user, device_cookie, devices, now)
    claimed = await login_failures.claim(pool, keys[0], keys, now, WINDOW, LOCKS, FREE_ATTEMPTS)
    if claimed is None:
        until = await login_failures.locked_until(pool, keys, now)
        raise SignInLockedError(until or now + FIRST_LOCK)  # not audited: it costs nothing
    # Unknown users are verified against a dummy hash: the same work as a wrong password.
    verification = await passwords.verify(user.password_hash if user else None, password)
    if user is None or user.disabled or not verification.ok:
        why = "unknown email" if user is None else "user disabled" if user.disabled else None
        why = why or "wrong password"
        async with pool.acquire() as connection, audited(connection) as trail:
            await _audit(trail, now, "login.failed", account, ip, why)
            counted = await login_failures.count(
                connection, keys[1:], now, WINDOW, LOCKS, FREE_ATTEMPTS
            )
            for locked in (claimed, *counted):
                if locked.locked_until is not None:
                    reason = f"{locked.failures} failures"
                    await _audit(trail, now, "login.locked", locked.key, ip, reason)
        raise SignInFailedError
    async with pool.acquire() as connection, audited(connection) as trail:
        required = (
            not recheck
            and not user.must_verify_email
            and await second_factors.has_second_factor(connection, user.id)
        )
        if not required:
            await login_failures.clear(connection, keys[0])  # the device's or the account's
        if verification.new_hash is not None:  # parameters changed since it was stored
            await users.set_password_hash(connection, user.id, verification.new_hash, now)
            user = replace(user, password_hash=verification.new_hash)
        if user.must_verify_email:
            action = "login.unverified"
        elif recheck:
            action = "account.reauthenticated"
        else:
            action = "login.password_verified" if required else "login.succeeded"
        await _audit(trail, now, action, str(user.id), ip, actor=f"user:{user.id}")
    if user.must_verify_email:
        raise EmailNotVerifiedError(user)
    if required:
        assert account is not None
        raise SecondFactorRequiredError(user, account)
    return user


def throttle_keys(
    account: str | None,
    ip: str,
    user: User | None,
    device_cookie: str | None,
    devices: DeviceCookies | None,
    now: datetime,
) -> list[str]:
    """The counters an attempt is checked against: its device cookie's alone if it carries a
    valid one for ``user``, else the account's and the client IP's. The first is claimed before
    the password is checked; the others count failures after."""
    if devices is not None:
        nonce = devices.nonce(device_cookie, user, now)  # checked for unknown users too
        if nonce is not None:
            return [f"device:{digest(nonce).hex()}"]
    return [f"email:{account}", f"ip:{ip}"] if account is not None else [f"ip:{ip}"]


async def _audit(
    trail: AuditTrail,
    now: datetime,
    action: str,
    subject: str | None,
    ip: str,
    reason: str | None = None,
    *,
    actor: str = "anonymous",
) -> None:
    """The subject is the user id, the lower-cased email or the locked key: never the password
    or anything derived from it."""
    await trail.record(
        now=now,
        actor=actor,
        action=action,
        subject=subject,
        reason=reason,
        details={"ip": ip},
    )


# What the account page shows of a session's browser: enough to tell browsers apart.
USER_AGENT_MAX = 256


def _shown(text: str | None, limit: int) -> str | None:
    """``text`` as a session keeps it: printable characters only (a header may carry anything,
    PostgreSQL text no NUL), at most ``limit`` of them."""
    kept = "".join(char for char in text or "" if char.isprintable())[:limit]
    return kept or None


async def start_session(
    pool: asyncpg.Pool,
    user: User,
    *,
    now: datetime,
    ttl: timedelta,
    user_agent: str | None = None,
    ip: str | None = None,
    amr: tuple[str, ...] = PASSWORD_ONLY,
) -> NewSession:
    """Always a new id (no session fixation): the old cookie, if any, is simply replaced. The
    browser's User-Agent and IP are kept for the account page's list of sessions; ``amr`` says
    which factors signed it in (RFC 8176), and with "mfa" the second one was given ``now``."""
    cookie = secrets.token_urlsafe(32)
    sid = secrets.token_urlsafe(16)
    await sessions.insert(
        pool,
        id_hash=digest(cookie),
        sid=sid,
        user_id=user.id,
        now=now,
        expires_at=now + ttl,
        user_agent=_shown(user_agent, USER_AGENT_MAX),
        ip=_shown(ip, 64),
        amr=amr,
        mfa_at=now if "mfa" in amr else None,
    )
    return NewSession(cookie=cookie, sid=sid, user=user, auth_time=now, amr=amr)
