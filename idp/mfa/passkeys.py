"""Passkeys: WebAuthn L2 ceremonies with py_webauthn, for registration on ``/account/security``,
passwordless sign-in on ``/login`` and the second factor after a password.

* The RP ID is the issuer's host, or ``IDP_WEBAUTHN_RP_ID`` (a parent domain); the expected
  origin is the issuer's exactly, port included. An issuer on an IP address has no RP ID
  (``Settings.passkey_rp_id``): no passkeys there.
* Every credential is discoverable (``residentKey: required``) and every ceremony requires user
  verification (§5.4.4 ``userVerification: required``, checked again on the response's UV flag,
  §7.1 step 15, §7.2 step 17): a passkey alone is then two factors (RFC 8176 "mfa": something
  held, and something known or been), and phishing-resistant (OpenID EAP ACR "phr").
* A challenge is 32 random bytes issued in a signed value (idp.signed_values) with its purpose
  and what it is bound to: the session for a registration, the pending sign-in's user for a
  second factor, the page for a passwordless sign-in (whose form's CSRF token binds it to the
  browser). It lives ``CHALLENGE_TTL`` and is accepted once: an accepted answer spends it in
  ``webauthn_challenges`` in the transaction that records the use. Nothing is written before
  that, so a GET that shows options changes nothing.
* The user handle is 32 random bytes, never the email (§14.6.1), made at the first
  registration; a discoverable assertion's ``userHandle`` must be the credential's user's
  (§7.2 step 6).
* The signature counter must go forward when either side is non-zero (§6.1.1, §7.2 step 21);
  the backup flags are stored: a backup-eligible credential (synced) is RFC 8176 "swk", else
  "hwk".
* The size of a credential's JSON is bounded once, where it arrives: the form's body
  (``idp.web.forms.MAX_BODY_BYTES``, 16 KiB, read no further; past it the form's page says it
  was not sent correctly). A passkey's answer is well under 4,000 characters (attestation
  "none": no certificates), so the bound leaves room and nothing here bounds it again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from idp.db import passkeys
from idp.db.passkeys import Passkey
from idp.db.pool import Connection
from idp.settings import Settings
from idp.signed_values import SignedValues

CHALLENGE_TTL = timedelta(minutes=5)
TIMEOUT_MS = 120_000  # how long the browser waits for the person (the challenge lives longer)
NAME_MAX = 64
REGISTER, SIGN_IN, SECOND_FACTOR = "register", "sign-in", "second-factor"
# Fixed texts for the pages: never what was posted.
EXPIRED = "The passkey request expired. Try again."
REFUSED = "That passkey could not be verified. Try again, or use another way to sign in."
UNKNOWN = "That passkey is not registered here."
TAKEN = "That passkey is already registered."
CHANGED = "Your passkeys changed meanwhile. Reload the page and try again."
_TRANSPORTS = {transport.value for transport in AuthenticatorTransport}
# base64url without padding (WebAuthn L2 §5.1 ``id``): the decoder skips other characters, so
# "AAAA!" would name the credential "AAAA" names.
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class PasskeyError(Exception):
    """A refused ceremony; ``message`` is a fixed text to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class RelyingParty:
    rp_id: str
    origin: str  # the issuer's scheme, host and port (§7.1 step 9, §7.2 step 13)
    name: str

    @classmethod
    def of(cls, settings: Settings) -> RelyingParty | None:
        """None where passkeys cannot work: an issuer on an IP address."""
        rp_id = settings.passkey_rp_id
        if rp_id is None:
            return None
        parts = urlsplit(settings.issuer)
        return cls(rp_id, f"{parts.scheme}://{parts.netloc}", parts.hostname or rp_id)


@dataclass(frozen=True)
class Ceremony:
    """Options for the browser (``navigator.credentials`` JSON) and the signed value that
    carries their challenge back with the answer."""

    options: dict[str, Any]
    token: str


@dataclass(frozen=True)
class PasskeyAnswer:
    """What a passkey form posts: the signed value of its options, the browser's credential
    JSON, and (registration) the name the person gave."""

    token: str
    response: str
    name: str | None = None


@dataclass(frozen=True)
class Verified:
    """An accepted assertion: whose, with which passkey, and the RFC 8176 methods it proves."""

    user_id: uuid.UUID
    passkey: Passkey

    @property
    def amr(self) -> tuple[str, ...]:
        return amr_of(self.passkey)


def amr_of(passkey: Passkey) -> tuple[str, ...]:
    """RFC 8176 §2 of a use of ``passkey``: a key in hardware ("hwk"), or in software when the
    credential may be synced ("swk", WebAuthn's backup eligibility); user verification
    ("user"); two factors ("mfa")."""
    return ("swk" if passkey.backup_eligible else "hwk", "user", "mfa")


class Passkeys:
    """The ceremonies of one relying party."""

    def __init__(self, rp: RelyingParty, key_encryption_key: bytes) -> None:
        self.rp = rp
        self._challenges = SignedValues(key_encryption_key, b"idp webauthn", CHALLENGE_TTL)

    @classmethod
    def of(cls, settings: Settings) -> Passkeys | None:
        rp = RelyingParty.of(settings)
        if rp is None or settings.key_encryption_key is None:
            return None
        return cls(rp, settings.key_encryption_key)

    # Registration (§7.1)

    async def registration(
        self, db: asyncpg.Pool, user_id: uuid.UUID, email: str, name: str | None, binding: str,
        now: datetime,
    ) -> Ceremony:  # fmt: skip
        """Options to create a passkey for the user: their handle (a new one, only carried in
        the signed value until a registration succeeds), the passkeys they have excluded."""
        handle = await passkeys.handle_of(db, user_id) or secrets.token_bytes(32)
        existing = await passkeys.of_user(db, user_id)
        challenge = secrets.token_bytes(32)
        options = generate_registration_options(
            rp_id=self.rp.rp_id,
            rp_name=self.rp.name,
            user_id=handle,
            user_name=email,
            user_display_name=name or email,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=passkey.credential_id) for passkey in existing
            ],
        )
        token = self._challenges.issue(
            now, REGISTER, binding, bytes_to_base64url(challenge), bytes_to_base64url(handle)
        )
        return Ceremony(json.loads(options_to_json(options)), token)

    def verify_registration(
        self, answer: PasskeyAnswer, binding: str, user_id: uuid.UUID, name: str, now: datetime
    ) -> tuple[Passkey, bytes, bytes]:
        """The new passkey, the user handle it was made for and the challenge to spend; CPU
        only (no database): the caller stores it with ``register``."""
        challenge, handle = self._read(answer.token, REGISTER, binding, now, fields=2)
        credential = _parsed(answer.response)
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp.rp_id,
                expected_origin=self.rp.origin,
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise PasskeyError(REFUSED) from None
        response_fields = credential.get("response")
        transports = response_fields.get("transports") if isinstance(response_fields, dict) else []
        transports = transports if isinstance(transports, list) else []
        passkey = Passkey(
            credential_id=verified.credential_id,
            user_id=user_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            name=name,
            transports=[t for t in transports if isinstance(t, str) and t in _TRANSPORTS],
            backup_eligible=verified.credential_device_type == "multi_device",
            backed_up=verified.credential_backed_up,
            aaguid=verified.aaguid,
            created_at=now,
            last_used_at=None,
        )
        return passkey, handle, challenge

    # Authentication (§7.2)

    def sign_in(self, now: datetime) -> Ceremony:
        """Options for a passwordless sign-in: no credentials listed, the browser offers the
        discoverable ones it holds for the RP ID (also as autofill, conditional mediation)."""
        return self._assertion(SIGN_IN, "", [], now)

    async def second_factor(self, db: asyncpg.Pool, user_id: uuid.UUID, now: datetime) -> Ceremony:
        """Options for the user's own passkeys, after their password."""
        existing = await passkeys.of_user(db, user_id)
        return self._assertion(SECOND_FACTOR, user_id.hex, existing, now)

    def _assertion(
        self, purpose: str, binding: str, allowed: list[Passkey], now: datetime
    ) -> Ceremony:
        challenge = secrets.token_bytes(32)
        options = generate_authentication_options(
            rp_id=self.rp.rp_id,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            allow_credentials=[
                PublicKeyCredentialDescriptor(id=passkey.credential_id) for passkey in allowed
            ],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        token = self._challenges.issue(now, purpose, binding, bytes_to_base64url(challenge))
        return Ceremony(json.loads(options_to_json(options)), token)

    async def verify_assertion(
        self,
        db: asyncpg.Pool,
        purpose: str,
        answer: PasskeyAnswer,
        now: datetime,
        user_id: uuid.UUID | None = None,
    ) -> Verified:
        """The passkey that signed the answer to the challenge of its options, its use recorded
        once (the challenge spent, the counter moved); ``user_id`` for a second factor: the
        passkey must be theirs. PasskeyError for anything else."""
        binding = "" if user_id is None else user_id.hex
        (challenge,) = self._read(answer.token, purpose, binding, now, fields=1)
        credential = _parsed(answer.response)
        found = await passkeys.by_credential(db, _credential_id(credential))
        if found is None:
            raise PasskeyError(UNKNOWN)
        passkey, handle = found
        if user_id is not None and passkey.user_id != user_id:
            raise PasskeyError(REFUSED)  # another user's passkey, after this user's password
        if not _handle_ok(credential, handle, required=user_id is None):
            raise PasskeyError(REFUSED)
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp.rp_id,
                expected_origin=self.rp.origin,
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise PasskeyError(REFUSED) from None
        async with db.acquire() as connection, connection.transaction():
            if not await passkeys.spend_challenge(
                connection, hashlib.sha256(challenge).digest(), now + CHALLENGE_TTL
            ):
                raise PasskeyError(EXPIRED)  # answered already: a replay
            if not await passkeys.used(
                connection, passkey, verified.new_sign_count, verified.credential_backed_up, now
            ):
                raise PasskeyError(REFUSED)  # the same counter value used meanwhile
        return Verified(passkey.user_id, passkey)

    def _read(
        self, token: str | None, purpose: str, binding: str, now: datetime, *, fields: int
    ) -> list[bytes]:
        found = self._challenges.read(token, now)
        if (
            found is None
            or len(found) != 2 + fields
            or found[0] != purpose
            or not isinstance(found[1], str)
            or not hmac.compare_digest(found[1].encode(), binding.encode())
        ):
            raise PasskeyError(EXPIRED)
        try:
            return [base64url_to_bytes(str(value)) for value in found[2:]]
        except ValueError:
            raise PasskeyError(EXPIRED) from None


async def register(db: Connection, passkey: Passkey, handle: bytes, challenge: bytes) -> None:
    """Store a verified registration (in the caller's transaction): the challenge spent, the
    user's handle the one the options carried, the credential new to idp."""
    if not await passkeys.spend_challenge(
        db, hashlib.sha256(challenge).digest(), passkey.created_at + CHALLENGE_TTL
    ):
        raise PasskeyError(EXPIRED)
    if await passkeys.ensure_handle(db, passkey.user_id, handle) != handle:
        raise PasskeyError(CHANGED)  # another registration made the user's handle meanwhile
    if not await passkeys.insert(db, passkey):
        raise PasskeyError(TAKEN)


def clean_name(raw: str | None, count: int) -> str:
    """The name to show: trimmed, printable, bounded; "Passkey N" when left empty."""
    name = " ".join("".join(c for c in raw or "" if c.isprintable()).split())[:NAME_MAX]
    return name or f"Passkey {count + 1}"


def _parsed(response: str | None) -> dict[str, Any]:
    """The browser's ``PublicKeyCredential.toJSON()`` (bounded by the form): an object, else
    refused."""
    if not response:
        raise PasskeyError(REFUSED)
    try:
        credential = json.loads(response)
    except ValueError:
        raise PasskeyError(REFUSED) from None
    if not isinstance(credential, dict):
        raise PasskeyError(REFUSED)
    return credential


def _credential_id(credential: dict[str, Any]) -> bytes:
    raw_id = credential.get("rawId")
    if (
        not isinstance(raw_id, str)
        or raw_id != credential.get("id")
        or not _BASE64URL.fullmatch(raw_id)
    ):
        raise PasskeyError(REFUSED)
    try:
        return base64url_to_bytes(raw_id)
    except ValueError:
        raise PasskeyError(REFUSED) from None


def _handle_ok(credential: dict[str, Any], handle: bytes, *, required: bool) -> bool:
    """§7.2 step 6: the ``userHandle`` names the credential's user; it is required when no
    credentials were listed (a discoverable sign-in), and checked whenever it is given."""
    response = credential.get("response")
    given = response.get("userHandle") if isinstance(response, dict) else None
    if not given:
        return not required
    try:
        return isinstance(given, str) and hmac.compare_digest(base64url_to_bytes(given), handle)
    except ValueError:
        return False
