"""The backend-for-frontend's configuration: one frozen dataclass the app builds and passes in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

KEY_BYTES = 32  # AES-256-GCM


class BffConfigError(ValueError):
    """A configuration value the kit cannot work with."""


@dataclass(frozen=True)
class BffConfig:
    """``base_url``: the BFF's own public origin (``https://app.example``), from which come the
    redirect URI (``{base_url}/auth/callback``), whether cookies take the ``__Host-`` prefix
    (on https) and where idp sends the browser after logout (``post_logout_redirect_uri``,
    ``base_url + "/"`` unless given). ``cookie_key``: 32 random bytes (``secrets.token_bytes
    (32)``) that seal the cookies with AES-256-GCM; keep it secret and the same on every
    instance. ``api_upstream``: the API the ``/api/...`` proxy forwards to, path unchanged.
    """

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)  # never in a log line or a traceback
    base_url: str
    cookie_key: bytes = field(repr=False)
    api_upstream: str | None = None
    api_prefix: str = "/api"
    scope: str = "openid profile email roles"
    # RFC 8707 §2: the API the access tokens are for; None: the client's first audience.
    resource: str | None = None
    post_logout_redirect_uri: str | None = None
    algorithms: tuple[str, ...] = ("RS256",)
    leeway: timedelta = timedelta(seconds=60)
    # An access token this close to its expiry is refreshed before use: it must not expire on
    # its way to the API.
    refresh_skew: timedelta = timedelta(seconds=30)
    # How long a sign-in may take between /auth/login and /auth/callback.
    login_ttl: timedelta = timedelta(minutes=10)
    # How long the cookies live (the refresh token's own lifetime at idp bounds the session).
    session_ttl: timedelta = timedelta(days=7)
    # How long a refresh's result is handed to requests that still carry the token it replaced
    # (they left the browser before the new cookies arrived).
    refresh_result_ttl: timedelta = timedelta(seconds=30)
    # The largest request body the API proxy reads and forwards (413 beyond).
    max_body_bytes: int = 1_048_576
    extra_authorize_params: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.cookie_key) != KEY_BYTES:
            raise BffConfigError(f"cookie_key must be {KEY_BYTES} bytes")
        for name in ("issuer", "base_url"):
            parts = urlsplit(getattr(self, name))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise BffConfigError(f"{name} must be an absolute http(s) URL")
        if not self.api_prefix.startswith("/") or self.api_prefix.endswith("/"):
            raise BffConfigError("api_prefix must start with / and not end with one")
        if any(alg.lower() == "none" or alg.startswith("HS") for alg in self.algorithms):
            # RFC 8725 §3.1: ID tokens are verified with idp's published (public) keys only.
            raise BffConfigError(f"algorithms must be asymmetric: {self.algorithms}")

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def redirect_uri(self) -> str:
        return self.base_url.rstrip("/") + "/auth/callback"

    @property
    def after_logout_uri(self) -> str:
        return self.post_logout_redirect_uri or self.base_url.rstrip("/") + "/"

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")
