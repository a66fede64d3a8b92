"""The second step of a sign-in: after the password of a user who has a second factor, the
browser holds a short-lived signed state naming the user (no session yet), and a code from the
authenticator app or a recovery code finishes the sign-in.

The pending state is a signed value (idp.signed_values) of the user id, the key the password was
throttled by and the parked request's token ("" for the account page's own sign-in) and, for a
step-up (``acr_values``), the sid of the signed-in session the factor upgrades ("" for a
sign-in) and the class it must reach. It is good for ``PENDING_TTL``: long enough to open an app
and type a code, short enough that a browser left at this step does not keep a half sign-in.

It is also bound to the password it followed: it carries a keyed digest of the user's stored
password hash, compared in constant time when the factor is posted (``PendingSignIns.current``).
Every change of the password (a reset, the account page, an operator's set-password) stores a
new hash, so a state issued before it is stale: whoever knew the old password cannot finish a
sign-in begun with it. (The digest is keyed so that the browser, which can read the state, learns
nothing of the hash.)

A code is counted by the brute-force locks of the password (idp.signin): the same keys, claimed
before the code is checked, so guesses at a code cost what guesses at a password cost; a user
who holds the password does not get new guesses by typing it again (the password step leaves
its claim counted for a user with a second factor).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import asyncpg

from idp.audit_trail import AuditTrail, audited
from idp.db import login_failures, second_factors, sessions
from idp.db.pool import Connection
from idp.db.users import User
from idp.devices import DeviceCookies
from idp.keys.crypto import purpose_key
from idp.mail.outbox import Mailing
from idp.mfa.passkeys import SECOND_FACTOR, PasskeyAnswer, PasskeyError, Passkeys
from idp.mfa.recovery import RecoveryHasher
from idp.mfa.totp import TotpSeal, TotpUnsealError, matching_step
from idp.oauth.code_flow import SignedIn
from idp.signed_values import SignedValues
from idp.signin import (
    FIRST_LOCK,
    FREE_ATTEMPTS,
    LOCKS,
    WINDOW,
    SignInLockedError,
    throttle_keys,
)

PENDING_TTL = timedelta(minutes=5)
# RFC 8176 §2: "otp" a one-time password, "mfa" more than one factor. A recovery code is a
# one-time password too: NIST SP 800-63B §5.1.2 calls it a look-up secret, something the user
# has (printed or stored apart from the password), used once, so with the password it makes two
# factors. RFC 8176 has no value of its own for it; the audit trail says which one it was.
TOTP_AMR = ("pwd", "otp", "mfa")
RECOVERY_AMR = ("pwd", "otp", "mfa")
RECOVERY_MAIL = "recovery_code_used"


class SecondFactorFailedError(Exception):
    """A wrong, used, replayed or malformed code: one error, whatever the reason."""


@dataclass(frozen=True)
class PendingSignIn:
    user_id: uuid.UUID
    account: str  # the throttle key of the password step (idp.signin: the folded email)
    request: str  # the parked authorization request's token; "" for /account/sign-in
    sid: str = ""  # step-up: the signed-in session the code upgrades; "" for a sign-in
    acr: str = ""  # step-up: the class (idp.oauth.acr) it must reach; "" any second factor
    password: str = ""  # the keyed digest of the user's password hash when it was issued


class PendingSignIns:
    """Issues and reads the signed pending state (the browser's cookie)."""

    def __init__(self, key_encryption_key: bytes, ttl: timedelta = PENDING_TTL) -> None:
        self._values = SignedValues(key_encryption_key, b"idp second factor", ttl)
        self._password_key = purpose_key(key_encryption_key, b"idp second factor password")
        self.ttl = ttl

    def issue(
        self,
        user: User,
        account: str,
        request: str,
        now: datetime,
        sid: str = "",
        acr: str = "",
    ) -> str:
        """The state of ``user`` as stored now: bound to their current password hash."""
        password = self._password_digest(user)
        return self._values.issue(now, user.id.hex, account, request, sid, acr, password)

    def read(self, value: str | None, now: datetime) -> PendingSignIn | None:
        """The state ``value`` holds if it is genuine and younger than ``ttl``; else None."""
        fields = self._values.read(value, now)
        if fields is None or len(fields) != 6 or not all(isinstance(f, str) for f in fields):
            return None
        user_hex, account, request, sid, acr, password = fields
        try:
            user_id = uuid.UUID(hex=user_hex)
        except ValueError:
            return None
        return PendingSignIn(user_id, account, request, sid, acr, password)

    def current(self, found: PendingSignIn, user: User) -> bool:
        """Whether ``user`` (read again now) still has the password ``found`` followed, and
        may sign in: not disabled meanwhile."""
        expected = self._password_digest(user).encode()
        same = hmac.compare_digest(expected, found.password.encode())
        return same and found.user_id == user.id and not user.disabled

    def _password_digest(self, user: User) -> str:
        stored = (user.password_hash or "").encode()
        mac = hmac.digest(self._password_key, stored, hashlib.sha256)
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


@dataclass(frozen=True)
class Factors:
    """What checks a code: the TOTP seal, the recovery hasher, and the mail that tells the user
    a recovery code was used."""

    seal: TotpSeal
    hasher: RecoveryHasher
    mailing: Mailing

    @classmethod
    def of(cls, key_encryption_key: bytes, mailing: Mailing) -> Factors:
        return cls(TotpSeal(key_encryption_key), RecoveryHasher(key_encryption_key), mailing)


@dataclass(frozen=True)
class Attempt:
    """Where a code comes from: the client IP and the browser's device cookie (idp.devices)."""

    ip: str
    device_cookie: str | None
    devices: DeviceCookies


async def verify(
    pool: asyncpg.Pool,
    factors: Factors,
    user: User,
    pending: PendingSignIn,
    code: str,
    attempt: Attempt,
    now: datetime,
) -> tuple[str, ...]:
    """The amr (RFC 8176) of the sign-in ``code`` completes, once: SignInLockedError while a
    key is locked (nothing checked, nothing counted), SecondFactorFailedError for a wrong code
    (counted like a wrong password, audited without the code)."""
    keys = throttle_keys(
        pending.account, attempt.ip, user, attempt.device_cookie, attempt.devices, now
    )
    claimed = await login_failures.claim(pool, keys[0], keys, now, WINDOW, LOCKS, FREE_ATTEMPTS)
    if claimed is None:
        until = await login_failures.locked_until(pool, keys, now)
        raise SignInLockedError(until or now + FIRST_LOCK)
    details = {"ip": attempt.ip}
    async with pool.acquire() as connection, audited(connection) as trail:
        method = await _use(connection, factors, user, code, now)
        if method is None:
            await _record(trail, now, "mfa.failed", user, details)
            counted = await login_failures.count(
                connection, keys[1:], now, WINDOW, LOCKS, FREE_ATTEMPTS
            )
            for locked in (claimed, *counted):
                if locked.locked_until is not None:
                    await trail.record(
                        now=now, actor="anonymous", action="login.locked", subject=locked.key,
                        reason=f"{locked.failures} failures", details=details,
                    )  # fmt: skip
        else:
            await login_failures.clear(connection, keys[0])
            await _record(trail, now, "mfa.succeeded", user, details | {"method": method})
            if method == "recovery_code":
                await _recovery_code_used(connection, trail, factors, user, now, details)
    if method is None:
        raise SecondFactorFailedError
    return TOTP_AMR if method == "totp" else RECOVERY_AMR


async def verify_passkey(
    pool: asyncpg.Pool,
    keys: Passkeys,
    user: User,
    pending: PendingSignIn,
    answer: PasskeyAnswer,
    attempt: Attempt,
    now: datetime,
) -> tuple[str, ...]:
    """The amr (RFC 8176) of a password and one of the user's passkeys, audited like a code,
    and the password's claim on the locks cleared; PasskeyError when refused (audited, not
    counted by the locks: a signature cannot be guessed)."""
    details = {"ip": attempt.ip, "method": "passkey"}
    try:
        verified = await keys.verify_assertion(pool, SECOND_FACTOR, answer, now, user.id)
    except PasskeyError:
        async with pool.acquire() as connection, audited(connection) as trail:
            await _record(trail, now, "mfa.failed", user, details)
        raise
    keys_of = throttle_keys(
        pending.account, attempt.ip, user, attempt.device_cookie, attempt.devices, now
    )
    async with pool.acquire() as connection, audited(connection) as trail:
        await login_failures.clear(connection, keys_of[0])
        await _record(trail, now, "mfa.succeeded", user, details)
    return ("pwd", *verified.amr)


async def step_up_session(
    pool: asyncpg.Pool, who: SignedIn, amr: tuple[str, ...], ip: str, now: datetime
) -> SignedIn | None:
    """The live session ``who`` upgraded by a second factor just given (``amr``), audited
    ``session.stepped_up``; None if it ended meanwhile. RFC 8176: it keeps every method it used,
    the earlier ones first (a passkey after a code keeps "otp"); its auth_time stays that of
    its sign-in."""
    methods = tuple(dict.fromkeys((*who.amr, *amr)))
    async with pool.acquire() as connection, audited(connection) as trail:
        upgraded = await sessions.step_up(connection, who.sid, who.user_id, methods, now)
        if upgraded is None:
            return None
        await trail.record(
            now=now, actor=f"user:{who.user_id}", action="session.stepped_up",
            subject=str(who.user_id), details={"ip": ip},
        )  # fmt: skip
    return replace(who, amr=upgraded.amr)


async def _use(
    connection: Connection, factors: Factors, user: User, code: str, now: datetime
) -> str | None:
    """Spend ``code``: "totp" if it is the app's code of a step newer than the last used (RFC
    6238 §5.2: a code is accepted once), "recovery_code" if it is one of the user's unused
    recovery codes; None otherwise."""
    stored = await second_factors.totp_of(connection, user.id)
    if stored is not None and stored.confirmed_at is not None:
        try:
            secret = factors.seal.unseal(user.id, stored.secret_sealed)
        except TotpUnsealError:
            secret = None  # another key-encryption key: the app cannot be checked
        step = None if secret is None else matching_step(secret, code, now)
        if step is not None:
            return "totp" if await second_factors.use_totp_step(connection, user.id, step) else None
    hashed = factors.hasher.hash(code)
    if hashed is not None and await second_factors.use_recovery_code(
        connection, user.id, hashed, now
    ):
        return "recovery_code"
    return None


async def _recovery_code_used(
    connection: Connection,
    trail: AuditTrail,
    factors: Factors,
    user: User,
    now: datetime,
    details: dict[str, str],
) -> None:
    """Audited and mailed: a recovery code used by someone else is the sign of a stolen
    password and stolen codes, and the user must hear of it."""
    unused, _ = await second_factors.recovery_counts(connection, user.id)
    await _record(trail, now, "mfa.recovery_code_used", user, details | {"unused": str(unused)})
    await factors.mailing.send(
        connection, RECOVERY_MAIL, user.email, now, name=user.name, unused=unused
    )


async def _record(
    trail: AuditTrail, now: datetime, action: str, user: User, details: dict[str, str]
) -> None:
    await trail.record(
        now=now, actor=f"user:{user.id}", action=action, subject=str(user.id), details=details
    )
