"""PKCE (RFC 7636), S256 only: ``plain`` would hand the verifier to whoever sees the request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

# RFC 7636 §4.1: 43 to 128 unreserved characters; §4.2: S256 gives 43 base64url characters.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def valid_challenge(challenge: str) -> bool:
    return _CHALLENGE.match(challenge) is not None


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify_pkce(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6, compared in constant time."""
    if _VERIFIER.match(verifier) is None:
        return False
    return hmac.compare_digest(s256(verifier), challenge)
