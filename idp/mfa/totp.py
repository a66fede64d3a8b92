"""Authenticator apps: TOTP (RFC 6238) with SHA-1, 6 digits, 30-second steps, one step of
drift either way; the secret (160 bits) sealed at rest under the key-encryption key, as the
signing keys are; and a code accepted once (§5.2: its step must be newer than the last used)."""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from idp.keys.crypto import purpose_key

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1  # RFC 6238 §5.2 / §6: one step back or forward for clock drift and typing
_NONCE_BYTES = 12
_CODE = re.compile(r"\d{6}", re.ASCII)  # other scripts' digits would not compare


class TotpUnsealError(Exception):
    """The sealed secret does not open with this key-encryption key (or was altered)."""


class TotpSeal:
    """AES-256-GCM under a key for this use alone, the user's id as associated data: a sealed
    secret cannot move to another user's row."""

    def __init__(self, key_encryption_key: bytes) -> None:
        self._aead = AESGCM(purpose_key(key_encryption_key, b"idp totp secret"))

    def seal(self, user_id: uuid.UUID, secret: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret.encode(), user_id.bytes)

    def unseal(self, user_id: uuid.UUID, sealed: bytes) -> str:
        try:
            plain = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], user_id.bytes)
        except (InvalidTag, ValueError):
            raise TotpUnsealError("IDP_KEY_ENCRYPTION_KEY does not open this secret") from None
        return plain.decode()


@dataclass(frozen=True)
class NewSecret:
    secret: str  # base32, as authenticator apps take it typed in
    uri: str  # otpauth://totp/... for the QR code


def new_secret(account: str, issuer_name: str) -> NewSecret:
    secret = pyotp.random_base32(length=32)  # 160 bits (RFC 4226 §4 recommends 160)
    uri = pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer_name)
    return NewSecret(secret, uri)


def step_at(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step ``code`` belongs to, within the allowed drift, or None. Every candidate is
    compared in constant time; surrounding spaces are forgiven, nothing else."""
    code = code.strip().replace(" ", "")
    if not _CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    found = None
    current = step_at(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code) and found is None:
            found = step
    return found
