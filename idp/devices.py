"""Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"): a browser
that signed a user in carries a signed token for that user, so that guesses from elsewhere,
which lock the account for every other browser, never lock its owner out (idp.signin).

A value is ``<issued>.<nonce>.<mac>``: the Unix time it was issued, 128 random bits, and an
HMAC-SHA256 over both, the user id and a digest of the user's password hash, under a key derived
from the key-encryption key. The user is bound but not named: a value is checked against the
account being tried, so the cookie names nobody, and a cookie of one user is worth nothing for
another. Binding the password hash voids every device cookie of a user whose password changes,
so a stolen copy does not outlive the owner's reaction to the theft.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from datetime import datetime, timedelta

from idp.db.users import User
from idp.keys.crypto import purpose_key

# Long enough to cover an owner's usual gaps between sign-ins; each sign-in issues a new one.
DEVICE_TTL = timedelta(days=180)
_VALUE = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})")
# A value issued by a process whose clock runs this much ahead is still accepted.
_FUTURE_LEEWAY = 300
_NOBODY = uuid.UUID(int=0)


class DeviceCookies:
    def __init__(self, key_encryption_key: bytes, ttl: timedelta = DEVICE_TTL) -> None:
        self._key = purpose_key(key_encryption_key, b"idp device cookie")
        self.ttl = ttl

    def issue(self, user: User, now: datetime) -> str:
        issued = str(int(now.timestamp()))
        nonce = secrets.token_urlsafe(16)
        return f"{issued}.{nonce}.{self._mac(user.id, user.password_hash, issued, nonce)}"

    def nonce(self, value: str | None, user: User | None, now: datetime) -> str | None:
        """The nonce of ``value`` if it is a genuine, unexpired device cookie of ``user`` as its
        password is now; None for anything else (absent, malformed, forged, tampered, expired,
        another user's, issued before a password change). For an unknown user (None) a value is
        checked all the same, against a dummy, so that both do the same work."""
        found = _VALUE.fullmatch(value) if value else None
        if found is None:
            return None
        issued, nonce, mac = found.groups()
        user_id, password_hash = (_NOBODY, "") if user is None else (user.id, user.password_hash)
        genuine = hmac.compare_digest(self._mac(user_id, password_hash, issued, nonce), mac)
        age = now.timestamp() - int(issued)
        if user is None or not genuine or not -_FUTURE_LEEWAY <= age <= self.ttl.total_seconds():
            return None
        return nonce

    def _mac(self, user_id: uuid.UUID, password_hash: str | None, issued: str, nonce: str) -> str:
        credential = hashlib.sha256((password_hash or "").encode()).hexdigest()
        message = f"{user_id}.{credential}.{issued}.{nonce}".encode()
        mac = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
