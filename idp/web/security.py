"""Browser-facing security: headers for every HTML response, cookies, CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp.devices import DeviceCookies
from idp.keys.crypto import purpose_key
from idp.mfa.challenge import PendingSignIns
from idp.settings import Settings

# No inline script or style anywhere; nothing may frame the pages (clickjacking). The one
# script is idp's own static file (/static/passkey.js); it fetches nothing (the passkey answer
# is posted with a form), so connect-src stays 'none'.
HTML_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


class Cookies:
    """Names and attributes follow the issuer: ``__Host-`` and ``Secure`` on https."""

    def __init__(self, settings: Settings) -> None:
        self.secure = settings.issuer.startswith("https://")
        prefix = "__Host-" if self.secure else ""
        self.session = f"{prefix}idp_session"
        self.login = f"{prefix}idp_login"
        self.device = f"{prefix}idp_device"
        self.second_factor = f"{prefix}idp_second_factor"  # a sign-in waiting for its code
        assert settings.key_encryption_key is not None
        self._csrf_key = purpose_key(settings.key_encryption_key, b"idp csrf")
        self._session_ttl = int(settings.session_ttl.total_seconds())
        self.devices = DeviceCookies(settings.key_encryption_key)
        self.pending_sign_ins = PendingSignIns(settings.key_encryption_key)

    def set(self, response: Response, name: str, value: str, *, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def set_session(self, response: Response, value: str) -> None:
        self.set(response, self.session, value, max_age=self._session_ttl)

    def set_device(self, response: Response, value: str) -> None:
        """Outlives the session: it marks the browser, not a sign-in (idp.devices)."""
        self.set(response, self.device, value, max_age=int(self.devices.ttl.total_seconds()))

    def clear(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="lax")

    def csrf_token(self, purpose: str, bound_to: str) -> str:
        message = f"{purpose}:{bound_to}".encode()
        return hmac.new(self._csrf_key, message, hashlib.sha256).hexdigest()

    def csrf_ok(self, purpose: str, bound_to: str | None, token: str | None) -> bool:
        if not bound_to or not token:
            return False
        expected = self.csrf_token(purpose, bound_to).encode()
        return hmac.compare_digest(expected, token.encode("utf-8", "surrogateescape"))


def client_ip(request: Request[Any]) -> str:
    return request.client.host if request.client else "unknown"
