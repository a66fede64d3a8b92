"""AES-256-GCM sealing of cookie values: nothing in them is readable or changeable by the
browser. The cookie's name is the associated data, so a value sealed for one cookie is refused
in another; a fresh 96-bit nonce per seal (NIST SP 800-38D §8.2.2: random nonces are safe far
beyond the number of cookies one key seals)."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, name: str, value: dict[str, Any]) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        plain = json.dumps(value, separators=(",", ":")).encode()
        sealed = nonce + self._aead.encrypt(nonce, plain, name.encode())
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def unseal(self, name: str, value: str | None) -> dict[str, Any] | None:
        """The sealed object, or None for a missing, altered or foreign value."""
        if not value:
            return None
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], name.encode())
            opened = json.loads(plain)
        except (ValueError, binascii.Error, InvalidTag):
            return None
        return opened if isinstance(opened, dict) else None
