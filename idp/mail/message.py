"""A composed mail, and its sealed form in the outbox: the bodies carry links whose tokens are
secrets, so at rest they are encrypted under the key-encryption key (AES-256-GCM, the recipient
as associated data: a sealed body cannot move to another row's recipient)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from idp.keys.crypto import purpose_key

_NONCE_BYTES = 12


@dataclass(frozen=True)
class Mail:
    to: str
    template: (
        str  # which mail (``verify_email``, ``reset_password``, ...): shown by `idp mail queue`
    )
    subject: str
    text: str
    html: str


class MailUnsealError(Exception):
    """The outbox row was sealed under another key-encryption key, or altered."""


class MailSeal:
    def __init__(self, key_encryption_key: bytes) -> None:
        self._aead = AESGCM(purpose_key(key_encryption_key, b"idp mail outbox"))

    def seal(self, mail: Mail) -> bytes:
        body = json.dumps({"subject": mail.subject, "text": mail.text, "html": mail.html})
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, body.encode(), mail.to.encode())

    def unseal(self, to: str, template: str, sealed: bytes) -> Mail:
        try:
            plain = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], to.encode())
        except (InvalidTag, ValueError):  # ValueError: too short to hold a nonce
            raise MailUnsealError("IDP_KEY_ENCRYPTION_KEY does not open this mail") from None
        body = json.loads(plain)
        return Mail(to, template, body["subject"], body["text"], body["html"])
