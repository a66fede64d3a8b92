"""Recovery codes: ten, each 60 random bits written as three groups of four base32 letters,
shown once; stored as an HMAC under a key derived from the key-encryption key (a leaked table
alone does not let anyone try the 2^60 candidates offline); each works once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from idp.keys.crypto import purpose_key

COUNT = 10
_CODE = re.compile(r"[A-Z2-7]{12}")


def new_codes() -> list[str]:
    """``COUNT`` codes like ``ABCD-EFGH-JKLM`` (60 bits each)."""
    codes = []
    for _ in range(COUNT):
        text = base64.b32encode(secrets.token_bytes(8)).decode()[:12]  # 12 letters, 5 bits each
        codes.append("-".join(text[i : i + 4] for i in range(0, 12, 4)))
    return codes


def normalized(code: str) -> str | None:
    """What a person typed, without dashes, spaces and case; None if it cannot be a code."""
    text = re.sub(r"[\s-]", "", code).upper()
    return text if _CODE.fullmatch(text) else None


class RecoveryHasher:
    def __init__(self, key_encryption_key: bytes) -> None:
        self._key = purpose_key(key_encryption_key, b"idp recovery codes")

    def hash(self, code: str) -> bytes | None:
        text = normalized(code)
        if text is None:
            return None
        return hmac.new(self._key, text.encode(), hashlib.sha256).digest()
