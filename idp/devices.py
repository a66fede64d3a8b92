"""Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"): a browser
that signed a user in carries a signed token for that user, so that guesses from elsewhere,
which lock the account for every other browser, never lock its owner out (idp.signin).

A value is ``<issued>.<nonce>.<mac>``: the Unix time it was issued, 128 random bits, and an
HMAC-SHA256 over both and the user id, under a key derived from the key-encryption key. The
user id is bound but not carried: a value is checked against the account being tried, so the
cookie names nobody, and a cookie of one user is worth nothing for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from datetime import datetime, timedelta

# Long enough to cover an owner's usual gaps between sign-ins; each sign-in issues a new one.
DEVICE_TTL = timedelta(days=180)
_VALUE = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})")
# A value issued by a process whose clock runs this much ahead is still accepted.
_FUTURE_LEEWAY = 300


class DeviceCookies:
    def __init__(self, key_encryption_key: bytes, ttl: timedelta = DEVICE_TTL) -> None:
        self._key = hmac.new(key_encryption_key, b"idp device cookie", hashlib.sha256).digest()
        self.ttl = ttl

    def issue(self, user_id: uuid.UUID, now: datetime) -> str:
        issued = str(int(now.timestamp()))
        nonce = secrets.token_urlsafe(16)
        return f"{issued}.{nonce}.{self._mac(user_id, issued, nonce)}"

    def nonce(self, value: str | None, user_id: uuid.UUID, now: datetime) -> str | None:
        """The nonce of ``value`` if it is a genuine, unexpired device cookie of ``user_id``;
        None for anything else (absent, malformed, forged, tampered, expired, another user's)."""
        found = _VALUE.fullmatch(value) if value else None
        if found is None:
            return None
        issued, nonce, mac = found.groups()
        age = now.timestamp() - int(issued)
        if not -_FUTURE_LEEWAY <= age <= self.ttl.total_seconds():
            return None
        if not hmac.compare_digest(self._mac(user_id, issued, nonce), mac):
            return None
        return nonce

    def _mac(self, user_id: uuid.UUID, issued: str, nonce: str) -> str:
        message = f"{user_id}.{issued}.{nonce}".encode()
        mac = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
