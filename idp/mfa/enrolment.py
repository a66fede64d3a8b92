"""What a signed-in person does with their own second factors on ``/account/security``: set up
an authenticator app (a new secret, confirmed with a first code), remove it, and create ten
recovery codes.

Policy, with the reason for each:

* Removing the app and creating recovery codes need the current password, checked as the
  account page checks it (``profile.confirm_password``: a wrong one counts toward the sign-in
  lock). A stolen session cookie must not be enough to weaken the account or mint a way past
  its second factor (Keycloak and GitHub ask to sign in again for both).
* Setting up the app needs no password: it only adds a factor, and the owner is mailed.
* Recovery codes back up a factor: they can be created only while an authenticator app or a
  passkey is set up, and removing the last of those removes them too. Recovery codes alone
  would be a second factor spent at every sign-in.
* Adding a passkey needs no password either (the ceremony itself verifies the person on the
  authenticator, and the owner is mailed); removing one needs it, like removing the app.
* Every change is audited (never a secret nor a code) and the owner is mailed a notice
  (NIST SP 800-63B §6.1.2.3: the subscriber is told when an authenticator is bound or removed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from webauthn.helpers import base64url_to_bytes

from idp.accounts.profile import ProfileError, Proof, confirm_password
from idp.accounts.services import Services
from idp.audit_trail import AuditTrail, audited
from idp.db import passkeys, second_factors
from idp.db.passkeys import Passkey
from idp.db.pool import Connection
from idp.db.users import User
from idp.mfa import recovery, totp
from idp.mfa.passkeys import PasskeyAnswer, PasskeyError, Passkeys, register
from idp.mfa.passkeys import clean_name as clean_passkey_name
from idp.mfa.recovery import RecoveryHasher
from idp.mfa.totp import NewSecret, TotpSeal
from idp.oauth.code_flow import SignedIn

CODE_WRONG = "That code is not the one your app shows now. Check the app and try again."
NOT_BEGUN = "Set up the authenticator app first."
ALREADY_SET_UP = "An authenticator app is already set up. Remove it first to set up another."
NO_FACTOR = "Set up an authenticator app or a passkey first: recovery codes stand in for them."
NO_PASSKEY = "That passkey is not one of yours any more."
# What the notice mail says happened: fixed texts, never the input.
ADDED = "An authenticator app was added to"
REMOVED = "The authenticator app was removed from"
CODES_CREATED = "New recovery codes were created for"
PASSKEY_ADDED = "A passkey was added to"
PASSKEY_REMOVED = "A passkey was removed from"


class EnrolmentError(ProfileError):
    """A change of second factors refused; fixed texts to show, like the account page's."""


@dataclass(frozen=True)
class Factors:
    """What the security page shows: the app's state and the recovery codes left."""

    totp_confirmed_at: datetime | None
    totp_pending: bool  # a secret handed out, not yet confirmed
    recovery_unused: int
    recovery_made: int
    passkeys: list[Passkey]

    @property
    def backed_up(self) -> bool:
        """A factor recovery codes can stand in for: the app, or a passkey."""
        return self.totp_confirmed_at is not None or bool(self.passkeys)


@dataclass(frozen=True)
class PendingTotp:
    """A secret to show once: as a QR code of ``uri`` and as typed-in text."""

    secret: str
    uri: str


def _seal(services: Services) -> TotpSeal:
    assert services.settings.key_encryption_key is not None
    return TotpSeal(services.settings.key_encryption_key)


def _hasher(services: Services) -> RecoveryHasher:
    assert services.settings.key_encryption_key is not None
    return RecoveryHasher(services.settings.key_encryption_key)


def issuer_name(services: Services) -> str:
    """The name apps list the account under: the issuer's host."""
    return urlsplit(services.settings.issuer).hostname or services.settings.issuer


async def factors_of(services: Services, user: User) -> Factors:
    async with services.pool.acquire() as connection:
        stored = await second_factors.totp_of(connection, user.id)
        unused, made = await second_factors.recovery_counts(connection, user.id)
        keys = await passkeys.of_user(connection, user.id)
    return Factors(
        totp_confirmed_at=None if stored is None else stored.confirmed_at,
        totp_pending=stored is not None and stored.confirmed_at is None,
        recovery_unused=unused,
        recovery_made=made,
        passkeys=keys,
    )


async def _record(
    services: Services,
    connection: Connection,
    trail: AuditTrail,
    user: User,
    action: str,
    now: datetime,
    *,
    mail: str | None,
    details: dict[str, int] | None = None,
) -> None:
    await trail.record(
        now=now, actor=f"user:{user.id}", action=action, subject=str(user.id), details=details
    )
    if mail is not None:
        await services.mailing.send(
            connection, "mfa_changed", user.email, now, name=user.name, what=mail
        )


async def begin_totp(services: Services, user: User, now: datetime) -> PendingTotp:
    """A new secret, stored sealed and unconfirmed (replacing an earlier unconfirmed one)."""
    new: NewSecret = totp.new_secret(user.email, issuer_name(services))
    sealed = _seal(services).seal(user.id, new.secret)
    async with services.pool.acquire() as connection, audited(connection) as trail:
        if not await second_factors.begin_totp(connection, user.id, sealed, now):
            raise EnrolmentError(ALREADY_SET_UP, status_code=409)
        await _record(services, connection, trail, user, "mfa.totp_begun", now, mail=None)
    return PendingTotp(new.secret, new.uri)


async def pending_totp(services: Services, user: User) -> PendingTotp | None:
    """The unconfirmed secret again (to show with a refused code), or None."""
    stored = await second_factors.totp_of(services.pool, user.id)
    if stored is None or stored.confirmed_at is not None:
        return None
    secret = _seal(services).unseal(user.id, stored.secret_sealed)
    return PendingTotp(secret, totp.provisioning_uri(secret, user.email, issuer_name(services)))


async def confirm_totp(services: Services, user: User, code: str | None, now: datetime) -> None:
    """The app is set up once it shows a code of the new secret. The confirming code's step is
    recorded as used: it cannot then sign in too (RFC 6238 §5.2)."""
    stored = await second_factors.totp_of(services.pool, user.id)
    if stored is None or stored.confirmed_at is not None:
        raise EnrolmentError(NOT_BEGUN)
    secret = _seal(services).unseal(user.id, stored.secret_sealed)
    step = totp.matching_step(secret, code or "", now)
    if step is None:
        raise EnrolmentError(CODE_WRONG)
    async with services.pool.acquire() as connection, audited(connection) as trail:
        if not await second_factors.confirm_totp(connection, user.id, step, now):
            raise EnrolmentError(NOT_BEGUN)  # removed or confirmed in between
        await _record(services, connection, trail, user, "mfa.totp_enrolled", now, mail=ADDED)


async def remove_totp(services: Services, user: User, proof: Proof, now: datetime) -> bool:
    """Remove the app (confirmed or not) and the recovery codes that backed it up; False when
    there was none."""
    await confirm_password(services, user, proof, now)
    async with services.pool.acquire() as connection, audited(connection) as trail:
        stored = await second_factors.totp_of(connection, user.id)
        if stored is None:
            return False
        await second_factors.remove_totp(connection, user.id)
        unused = await _codes_left_alone(connection, user)
        confirmed = stored.confirmed_at is not None
        await _record(
            services, connection, trail, user, "mfa.totp_removed", now,
            mail=REMOVED if confirmed else None,
            details={"confirmed": int(confirmed), "recovery_codes_removed": unused},
        )  # fmt: skip
    return True


async def create_recovery_codes(
    services: Services, user: User, proof: Proof, now: datetime
) -> list[str]:
    """Ten new codes, to show once; only their HMACs are kept, and the old ones are void."""
    await confirm_password(services, user, proof, now)
    codes = recovery.new_codes()
    hasher = _hasher(services)
    hashes = [hasher.hash(code) for code in codes]
    assert all(hashes), "new codes are always well formed"
    async with services.pool.acquire() as connection, audited(connection) as trail:
        if not (await second_factors.factor_kinds(connection, user.id)).backs_up_codes:
            raise EnrolmentError(NO_FACTOR, status_code=409)
        await second_factors.replace_recovery_codes(
            connection, user.id, [h for h in hashes if h], now
        )
        await _record(
            services, connection, trail, user, "mfa.recovery_codes_created", now,
            mail=CODES_CREATED, details={"count": len(codes)},
        )  # fmt: skip
    return codes


async def _codes_left_alone(connection: Connection, user: User) -> int:
    """Once the last factor they back up is gone, the recovery codes go too: how many unused
    ones were removed (0 while a factor is left)."""
    if (await second_factors.factor_kinds(connection, user.id)).backs_up_codes:
        return 0
    unused, _ = await second_factors.recovery_counts(connection, user.id)
    await second_factors.remove_recovery_codes(connection, user.id)
    return unused


async def add_passkey(
    services: Services,
    keys: Passkeys,
    holder: SignedIn,
    user: User,
    answer: PasskeyAnswer,
    now: datetime,
) -> Passkey:
    """Register the passkey the browser made for the options of ``answer.token`` (bound to the
    session ``holder``); audited and mailed."""
    async with services.pool.acquire() as connection:
        count = len(await passkeys.of_user(connection, user.id))
    name = clean_passkey_name(answer.name, count)
    try:
        passkey, handle, challenge = keys.verify_registration(
            answer, holder.sid, user.id, name, now
        )
        async with services.pool.acquire() as connection, audited(connection) as trail:
            await register(connection, passkey, handle, challenge)
            await _record(
                services, connection, trail, user, "mfa.passkey_added", now, mail=PASSKEY_ADDED
            )
    except PasskeyError as refused:
        raise EnrolmentError(refused.message) from None
    return passkey


async def remove_passkey(
    services: Services, user: User, credential_id: str | None, proof: Proof, now: datetime
) -> None:
    """Remove one of the user's passkeys (and the recovery codes, if it was the last factor)."""
    await confirm_password(services, user, proof, now)
    try:
        raw_id = base64url_to_bytes(credential_id or "")
    except ValueError:
        raise EnrolmentError(NO_PASSKEY, status_code=404) from None
    async with services.pool.acquire() as connection, audited(connection) as trail:
        if await passkeys.remove(connection, user.id, raw_id) is None:
            raise EnrolmentError(NO_PASSKEY, status_code=404)
        unused = await _codes_left_alone(connection, user)
        await _record(
            services, connection, trail, user, "mfa.passkey_removed", now,
            mail=PASSKEY_REMOVED, details={"recovery_codes_removed": unused},
        )  # fmt: skip
