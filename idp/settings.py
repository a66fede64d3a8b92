"""Settings: the one place that reads the environment.

Everything else receives a frozen :class:`Settings`. Tests build ``Settings(...)`` directly.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, cast, get_args
from urllib.parse import urlsplit

SigningAlg = Literal["RS256", "PS256", "ES256", "EdDSA"]
SIGNING_ALGS: tuple[SigningAlg, ...] = get_args(SigningAlg)
Argon2Profile = Literal["rfc9106-low-memory", "test"]
ARGON2_PROFILES: tuple[Argon2Profile, ...] = get_args(Argon2Profile)
LogFormatSetting = Literal["auto", "json", "text"]
LOG_FORMATS: tuple[LogFormatSetting, ...] = get_args(LogFormatSetting)
Registration = Literal["closed", "open"]
REGISTRATIONS: tuple[Registration, ...] = get_args(Registration)
MfaPolicy = Literal["optional", "required"]
MFA_POLICIES: tuple[MfaPolicy, ...] = get_args(MfaPolicy)
DcrPolicy = Literal["closed", "token", "open"]
DCR_POLICIES: tuple[DcrPolicy, ...] = get_args(DcrPolicy)
_ON_OFF = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}
# NIST SP 800-63B §3.1.1.2: at least 8 characters may be required, at least 64 must be allowed.
PASSWORD_MIN_LENGTH_RANGE = (8, 64)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 6750 §2.1's b64token: what may follow "Bearer " in an Authorization header.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_MAIL_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class SettingsError(ValueError):
    """A setting is missing or wrong; ``str(error)`` is one line naming the variable and why."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable


def parse_duration(text: str) -> timedelta:
    """Parse ``90``, ``90s``, ``15m``, ``24h`` or ``7d`` (a bare number is seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration (use e.g. 90, 90s, 15m, 24h, 7d)")
    try:
        return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


def parse_networks(text: str) -> tuple[Network, ...]:
    """Parse ``10.0.0.7, 10.1.0.0/16, ::1``: addresses and networks, comma-separated."""
    networks = []
    for entry in (item.strip() for item in text.split(",")):
        if entry == "*":
            raise ValueError("'*' would let every client name its own address: list the proxies")
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry))
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP address or network: {exc}") from None
    return tuple(networks)


@dataclass(frozen=True)
class Settings:
    issuer: str = "http://127.0.0.1:8000"
    database_url: str | None = None
    data_dir: Path = Path(".idp")
    key_encryption_key: bytes | None = None
    signing_alg: SigningAlg = "RS256"
    key_rotation_interval: timedelta = timedelta(days=30)
    key_prepublish: timedelta = timedelta(days=1)
    key_check_interval: timedelta = timedelta(seconds=60)
    jwks_max_age: timedelta = timedelta(minutes=5)
    clock_skew: timedelta = timedelta(seconds=60)
    access_token_ttl: timedelta = timedelta(minutes=10)
    max_access_token_ttl: timedelta = timedelta(hours=1)
    auth_code_ttl: timedelta = timedelta(seconds=60)
    session_ttl: timedelta = timedelta(hours=12)
    refresh_token_ttl: timedelta = timedelta(days=30)
    refresh_idle_ttl: timedelta = timedelta(days=14)
    refresh_reuse_grace: timedelta = timedelta(0)
    database_timeout: timedelta = timedelta(seconds=5)
    argon2_profile: Argon2Profile = "rfc9106-low-memory"
    # Peers whose X-Forwarded-For/-Proto idp believes (idp.server); none by default.
    trusted_proxies: tuple[Network, ...] = ()
    # A request head (request line and header fields) must arrive within this, and a request
    # body may not pause longer (idp.web.head_limits).
    head_timeout: timedelta = timedelta(seconds=10)
    demo: bool = False  # idp serve --demo: the /demo/callback page exists
    # When set, /metrics answers only requests bearing it (idp.web.metrics); a secret.
    metrics_token: str | None = field(default=None, repr=False)
    # auto: readable text when stdout is a terminal, else JSON (idp.logs.choose_format).
    log_format: LogFormatSetting = "auto"
    # smtp://[user:pass@]host[:port][?tls=require] or smtps://...; None: mail waits in the
    # outbox (demo mode shows it on /demo/mailbox). Holds the SMTP password: a secret.
    smtp_url: str | None = field(default=None, repr=False)
    mail_from: str | None = None  # None: idp@<issuer host>
    registration: Registration = "closed"  # open: /signup exists
    password_min_length: int = 12
    templates_dir: Path | None = None  # operator overrides for page and mail templates
    # The WebAuthn RP ID: the issuer's host, or a parent domain of it; None: the issuer's host.
    webauthn_rp_id: str | None = None
    # required: every sign-in ends with two factors; a user without one sets one up first.
    mfa: MfaPolicy = "optional"
    # /admin/v1/: the management API (idp.web.admin); on in demo mode.
    admin_api: bool = False
    # RFC 7591 at /oauth2/register: closed, token (an initial access token), or open (public
    # native/CLI clients only, rate-limited per IP).
    dcr: DcrPolicy = "closed"
    # Client ID Metadata Documents: an https client_id is fetched and trusted for its redirect
    # URIs (idp.oauth.metadata_document).
    cimd: bool = False
    # Development and tests only: a metadata document may be on a loopback address.
    cimd_allow_loopback: bool = False
    # Metadata document fetches a client IP may cause per minute (counted in the database, so
    # across processes), and fetches one process makes at once: idp fetches what anyone names.
    cimd_fetches_per_minute: int = 10
    cimd_concurrent_fetches: int = 8
    # Resources (RFC 8707) that dynamically registered clients may ask for, beside those that
    # `idp resources add` keeps in the database.
    resources: tuple[str, ...] = ()

    @property
    def admin_audience(self) -> str:
        """The ``aud`` of access tokens for the management API."""
        return f"{self.issuer}/admin"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def min_publication(self) -> timedelta:
        """How long a key must be published before it may sign: a verifier may hold a JWKS
        fetched just before it appeared for ``jwks_max_age``, allows ``clock_skew``, and a
        process that missed the change notification serves the old JWKS until its safety-net
        reload, which runs every half ``key_check_interval``: one whole interval is the margin."""
        return self.jwks_max_age + self.clock_skew + self.key_check_interval

    @property
    def sender(self) -> str:
        """The From address of idp's mail."""
        return self.mail_from or f"idp@{urlsplit(self.issuer).hostname}"

    @property
    def passkey_rp_id(self) -> str | None:
        """The WebAuthn RP ID passkeys are bound to; None when the issuer's host is an IP
        address, which no browser accepts as an RP ID (WebAuthn L2 §5.1.3 step 8 asks for a
        registrable domain suffix of the origin's effective domain): no passkeys then."""
        host = urlsplit(self.issuer).hostname or ""
        return None if _is_ip(host) else (self.webauthn_rp_id or host)

    @property
    def deny_list_horizon(self) -> timedelta:
        """How long a revoked access token issued now must stay deny-listed: verifiers accept
        it until its exp plus the clock skew."""
        return self.longest_token_ttl + self.clock_skew

    def deny_until(self, now: datetime) -> datetime:
        """Until when an access token revoked at ``now`` stays deny-listed (the one rule every
        revocation path uses: tokens issued up to ``now`` are refused by idp until then)."""
        return now + self.deny_list_horizon

    @property
    def longest_token_ttl(self) -> timedelta:
        """The longest lifetime of any JWT a signing key may have signed (access and ID tokens).

        Clients may have their own access-token lifetime, up to IDP_MAX_ACCESS_TOKEN_TTL.
        """
        return max(self.access_token_ttl, self.max_access_token_ttl)

    def validate(self) -> None:
        """Refuse schedules that could leave a relying app holding a token it cannot verify."""
        if not self.issuer.startswith(("https://", "http://")) or self.issuer.endswith("/"):
            raise SettingsError("IDP_ISSUER", "must be an http(s) URL without a trailing slash")
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise SettingsError("IDP_DATABASE_URL", "must be a postgresql:// URL")
        if self.signing_alg not in SIGNING_ALGS:
            raise SettingsError(
                "IDP_SIGNING_ALG", f"{self.signing_alg!r} is not one of {', '.join(SIGNING_ALGS)}"
            )
        if self.metrics_token is not None and not _BEARER_TOKEN.fullmatch(self.metrics_token):
            raise SettingsError(
                "IDP_METRICS_TOKEN",
                "must be a Bearer token: letters, digits and -._~+/ (e.g. openssl rand -hex 32)",
            )
        if self.smtp_url is not None:
            check_smtp_url(self.smtp_url)
        if self.registration not in REGISTRATIONS:
            raise SettingsError(
                "IDP_REGISTRATION",
                f"{self.registration!r} is not one of {', '.join(REGISTRATIONS)}",
            )
        if self.mfa not in MFA_POLICIES:
            raise SettingsError("IDP_MFA", f"{self.mfa!r} is not one of {', '.join(MFA_POLICIES)}")
        if self.dcr not in DCR_POLICIES:
            raise SettingsError("IDP_DCR", f"{self.dcr!r} is not one of {', '.join(DCR_POLICIES)}")
        for resource in self.resources:
            parts = urlsplit(resource)
            if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
                raise SettingsError(
                    "IDP_RESOURCES",
                    f"{resource!r} is not an absolute http(s) URL without a fragment (RFC 8707 §2)",
                )
        low, high = PASSWORD_MIN_LENGTH_RANGE
        if not low <= self.password_min_length <= high:
            raise SettingsError(
                "IDP_PASSWORD_MIN_LENGTH",
                f"must be a number from {low} to {high} (NIST SP 800-63B)",
            )
        if self.mail_from is not None and not _MAIL_ADDRESS.fullmatch(self.mail_from):
            raise SettingsError("IDP_MAIL_FROM", f"{self.mail_from!r} is not an email address")
        if self.webauthn_rp_id is not None:
            host = urlsplit(self.issuer).hostname or ""
            rp_id = self.webauthn_rp_id
            if _is_ip(rp_id) or _is_ip(host) or not (host == rp_id or host.endswith("." + rp_id)):
                raise SettingsError(
                    "IDP_WEBAUTHN_RP_ID",
                    f"{rp_id!r} must be the issuer's host ({host}) or a parent domain of it",
                )
        if self.key_encryption_key is not None and len(self.key_encryption_key) != 32:
            raise SettingsError("IDP_KEY_ENCRYPTION_KEY", "must be 32 bytes, base64url-encoded")
        for name in (
            "key_rotation_interval",
            "key_check_interval",
            "access_token_ttl",
            "database_timeout",
            "head_timeout",
        ):
            if getattr(self, name) <= timedelta(0):
                raise SettingsError(f"IDP_{name.upper()}", "must be longer than 0s")
        if self.key_prepublish < self.min_publication:
            raise SettingsError(
                "IDP_KEY_PREPUBLISH",
                f"{_fmt(self.key_prepublish)} is shorter than IDP_JWKS_MAX_AGE + IDP_CLOCK_SKEW "
                f"+ IDP_KEY_CHECK_INTERVAL ({_fmt(self.min_publication)}): verifiers caching "
                "the JWKS would meet tokens signed by a key they have not fetched yet",
            )
        if self.key_rotation_interval < self.key_prepublish:
            raise SettingsError(
                "IDP_KEY_ROTATION_INTERVAL",
                f"{_fmt(self.key_rotation_interval)} is shorter than IDP_KEY_PREPUBLISH "
                f"({_fmt(self.key_prepublish)}): a next key could not be published long enough",
            )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        demo: bool = False,
    ) -> Settings:
        """Build settings from ``IDP_*`` variables; raise :class:`SettingsError` on a bad one.
        ``demo`` (idp serve --demo) opens sign-up unless IDP_REGISTRATION says otherwise."""

        def duration(variable: str, default: timedelta) -> timedelta:
            raw = environ.get(variable)
            if raw is None or raw == "":
                return default
            try:
                return parse_duration(raw)
            except ValueError as exc:
                raise SettingsError(variable, str(exc)) from None

        defaults = cls.__dataclass_fields__
        profile = environ.get("IDP_ARGON2_PROFILE") or "rfc9106-low-memory"
        if profile not in ARGON2_PROFILES:
            raise SettingsError(
                "IDP_ARGON2_PROFILE", f"{profile!r} is not one of {', '.join(ARGON2_PROFILES)}"
            )
        log_format = environ.get("IDP_LOG_FORMAT") or "auto"
        if log_format not in LOG_FORMATS:
            raise SettingsError(
                "IDP_LOG_FORMAT", f"{log_format!r} is not one of {', '.join(LOG_FORMATS)}"
            )
        kek_text = environ.get("IDP_KEY_ENCRYPTION_KEY") or None
        alg = environ.get("IDP_SIGNING_ALG") or "RS256"
        if alg not in SIGNING_ALGS:
            raise SettingsError(
                "IDP_SIGNING_ALG", f"{alg!r} is not one of {', '.join(SIGNING_ALGS)}"
            )

        def default_of(name: str) -> timedelta:
            return cast(timedelta, defaults[name].default)

        try:
            trusted_proxies = parse_networks(environ.get("IDP_TRUSTED_PROXIES") or "")
        except ValueError as exc:
            raise SettingsError("IDP_TRUSTED_PROXIES", str(exc)) from None

        registration = environ.get("IDP_REGISTRATION") or ("open" if demo else "closed")
        if registration not in REGISTRATIONS:
            raise SettingsError(
                "IDP_REGISTRATION", f"{registration!r} is not one of {', '.join(REGISTRATIONS)}"
            )
        mfa = environ.get("IDP_MFA") or "optional"
        if mfa not in MFA_POLICIES:
            raise SettingsError("IDP_MFA", f"{mfa!r} is not one of {', '.join(MFA_POLICIES)}")
        dcr = environ.get("IDP_DCR") or "closed"
        if dcr not in DCR_POLICIES:
            raise SettingsError("IDP_DCR", f"{dcr!r} is not one of {', '.join(DCR_POLICIES)}")

        def switch(variable: str, default: bool) -> bool:
            raw = (environ.get(variable) or "").strip().lower()
            if not raw:
                return default
            if raw not in _ON_OFF:
                raise SettingsError(variable, f"{raw!r} is not on or off")
            return _ON_OFF[raw]

        resources = tuple(
            dict.fromkeys(part.strip() for part in (environ.get("IDP_RESOURCES") or "").split(","))
        )
        min_length_text = environ.get("IDP_PASSWORD_MIN_LENGTH") or "12"
        if not min_length_text.strip().isdigit():
            raise SettingsError("IDP_PASSWORD_MIN_LENGTH", f"{min_length_text!r} is not a number")

        def count(variable: str, default: int) -> int:
            raw = (environ.get(variable) or str(default)).strip()
            if not raw.isdigit() or int(raw) < 1:
                raise SettingsError(variable, f"{raw!r} is not a whole number of at least 1")
            return int(raw)

        templates_dir = environ.get("IDP_TEMPLATES_DIR") or None
        if templates_dir is not None and not Path(templates_dir).is_dir():
            raise SettingsError("IDP_TEMPLATES_DIR", f"{templates_dir} is not a directory")

        return cls(
            issuer=environ.get("IDP_ISSUER") or _default_issuer(host, port, demo),
            database_url=environ.get("IDP_DATABASE_URL") or None,
            data_dir=Path(environ.get("IDP_DATA_DIR") or ".idp"),
            key_encryption_key=None if kek_text is None else decode_kek(kek_text),
            signing_alg=alg,
            key_rotation_interval=duration(
                "IDP_KEY_ROTATION_INTERVAL", default_of("key_rotation_interval")
            ),
            key_prepublish=duration("IDP_KEY_PREPUBLISH", default_of("key_prepublish")),
            key_check_interval=duration("IDP_KEY_CHECK_INTERVAL", default_of("key_check_interval")),
            jwks_max_age=duration("IDP_JWKS_MAX_AGE", default_of("jwks_max_age")),
            clock_skew=duration("IDP_CLOCK_SKEW", default_of("clock_skew")),
            access_token_ttl=duration("IDP_ACCESS_TOKEN_TTL", default_of("access_token_ttl")),
            max_access_token_ttl=duration(
                "IDP_MAX_ACCESS_TOKEN_TTL", default_of("max_access_token_ttl")
            ),
            auth_code_ttl=duration("IDP_AUTH_CODE_TTL", default_of("auth_code_ttl")),
            session_ttl=duration("IDP_SESSION_TTL", default_of("session_ttl")),
            refresh_token_ttl=duration("IDP_REFRESH_TOKEN_TTL", default_of("refresh_token_ttl")),
            refresh_idle_ttl=duration("IDP_REFRESH_IDLE_TTL", default_of("refresh_idle_ttl")),
            refresh_reuse_grace=duration(
                "IDP_REFRESH_REUSE_GRACE", default_of("refresh_reuse_grace")
            ),
            database_timeout=duration("IDP_DATABASE_TIMEOUT", default_of("database_timeout")),
            argon2_profile=profile,
            trusted_proxies=trusted_proxies,
            head_timeout=duration("IDP_HEAD_TIMEOUT", default_of("head_timeout")),
            metrics_token=environ.get("IDP_METRICS_TOKEN") or None,
            log_format=log_format,
            smtp_url=environ.get("IDP_SMTP_URL") or None,
            mail_from=environ.get("IDP_MAIL_FROM") or None,
            registration=registration,
            password_min_length=int(min_length_text),
            templates_dir=None if templates_dir is None else Path(templates_dir),
            webauthn_rp_id=(environ.get("IDP_WEBAUTHN_RP_ID") or "").lower().rstrip(".") or None,
            mfa=mfa,
            admin_api=switch("IDP_ADMIN_API", demo),
            dcr=dcr,
            cimd=switch("IDP_CIMD", False),
            cimd_allow_loopback=switch("IDP_CIMD_ALLOW_LOOPBACK", False),
            cimd_fetches_per_minute=count("IDP_CIMD_FETCHES_PER_MINUTE", 10),
            cimd_concurrent_fetches=count("IDP_CIMD_CONCURRENT_FETCHES", 8),
            resources=tuple(resource for resource in resources if resource),
            demo=demo,
        )


def check_smtp_url(url: str) -> None:
    """``smtp://[user:pass@]host[:port][?tls=require]`` or ``smtps://...`` (idp.mail.smtp reads
    it); the error never repeats the URL, which may hold a password."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SettingsError("IDP_SMTP_URL", "must be smtp://[user:pass@]host[:port] or smtps://...")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise SettingsError("IDP_SMTP_URL", "has a port that is not a number") from None
    if parts.query not in ("", "tls=require"):
        raise SettingsError("IDP_SMTP_URL", "knows one option only: ?tls=require")
    if parts.scheme == "smtps" and parts.query:
        raise SettingsError("IDP_SMTP_URL", "smtps:// is always TLS: drop ?tls=require")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _default_issuer(host: str, port: int, demo: bool = False) -> str:
    """``http://host:port``, which names a server only when ``host`` is one address. The demo
    on the IPv4 loopback says ``localhost``: passkeys need a domain (an RP ID is never an IP
    address), and browsers treat ``http://localhost`` as a secure context."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - refusing it, not binding to it
        raise SettingsError(
            "IDP_ISSUER",
            f"is required when serving on every interface ({host or '*'}): the issuer is the "
            "URL clients reach idp at, e.g. https://login.example.com",
        )
    if demo and host == "127.0.0.1":
        return f"http://localhost:{port}"
    return f"http://{host}:{port}"


def decode_kek(text: str) -> bytes:
    """Decode a base64url key-encryption key (padding optional)."""
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise SettingsError("IDP_KEY_ENCRYPTION_KEY", "is not valid base64url") from None
    if len(raw) != 32:
        raise SettingsError("IDP_KEY_ENCRYPTION_KEY", f"must decode to 32 bytes, got {len(raw)}")
    return raw


def _fmt(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
