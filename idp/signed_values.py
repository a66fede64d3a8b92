"""Short-lived state a browser carries for idp, signed so that it comes back unaltered: a list
of JSON values, as ``<payload>.<mac>``, the payload base64url JSON and the mac an HMAC-SHA256 of
it under a key derived from the key-encryption key for one purpose. The first field is always
the Unix time it was issued, so a reader refuses it once older than its ``ttl``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

from idp.keys.crypto import purpose_key

MAX_VALUE = 4096  # a value longer than any issued is not even decoded


class SignedValues:
    def __init__(self, key_encryption_key: bytes, purpose: bytes, ttl: timedelta) -> None:
        self._key = purpose_key(key_encryption_key, purpose)
        self.ttl = ttl

    def issue(self, now: datetime, *fields: Any) -> str:
        data = json.dumps([int(now.timestamp()), *fields], separators=(",", ":"))
        payload = base64.urlsafe_b64encode(data.encode()).rstrip(b"=").decode()
        return f"{payload}.{self._mac(payload)}"

    def read(self, value: str | None, now: datetime) -> list[Any] | None:
        """The fields after the issue time, if ``value`` is genuine and younger than ``ttl``;
        None for anything else (absent, malformed, forged, altered, expired)."""
        if not value or len(value) > MAX_VALUE or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(
            self._mac(payload).encode(), mac.encode("utf-8", "surrogateescape")
        ):
            return None
        try:
            issued, *fields = json.loads(
                base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            )
            age = now.timestamp() - int(issued)
        except (ValueError, TypeError, binascii.Error):
            return None  # genuine but unreadable: only a change of format makes one
        return fields if 0 <= age <= self.ttl.total_seconds() else None

    def _mac(self, payload: str) -> str:
        mac = hmac.new(self._key, payload.encode("utf-8", "surrogateescape"), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
