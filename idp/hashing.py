"""How secrets are stored: session ids, codes, request ids and tokens by their SHA-256 only."""

from __future__ import annotations

import hashlib


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
