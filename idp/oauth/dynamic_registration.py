"""Dynamic client registration (RFC 7591) and its management (RFC 7592): which metadata a
program may register under ``IDP_DCR``, the client it becomes, and the answers' bodies.

No HTTP here (``idp.web.register``) and no SQL (``idp.db.registrations``). Errors::

    OAuthError (idp.oauth.errors)
    ├── InvalidRedirectUriError          400 invalid_redirect_uri        (RFC 7591 §3.2.2)
    ├── InvalidClientMetadataError       400 invalid_client_metadata     (RFC 7591 §3.2.2)
    ├── InvalidSoftwareStatementError    400 invalid_software_statement  (RFC 7591 §3.2.2)
    ├── InvalidTokenError                401 invalid_token  (a bad initial or registration token)
    └── TooManyRegistrationsError        429 (Retry-After), ``open`` only, per client IP
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from idp.accounts.rate_limit import Limit
from idp.db.clients import Client
from idp.hashing import digest
from idp.oauth.client_auth import AUTH_METHODS
from idp.oauth.discovery import REGISTRATION_PATH
from idp.oauth.errors import OAuthError
from idp.oauth.redirect_uris import RedirectUriError, validate_redirect_uri
from idp.oauth.registration import (
    DEFAULT_SCOPES,
    GRANT_TYPES,
    RegistrationError,
    register,
)
from idp.settings import Settings

Policy = Literal["token", "open"]
# RFC 7591 §2: what a client registering under `open` may be: a public native or CLI app
# (RFC 8252) that signs people in with the code flow and PKCE, nothing that acts on its own.
OPEN_GRANT_TYPES = frozenset({"authorization_code", "refresh_token"})
# Scopes a registered client may have: the user's own data, never a resource server's scope or
# the management API's, which only an operator may grant.
DYNAMIC_SCOPES = DEFAULT_SCOPES
# RFC 7591 §2 metadata kept in clients.metadata and echoed back (§3.2.1).
URI_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
TEXT_FIELDS = ("client_name", "software_id", "software_version")
MAX_TEXT = 200
MAX_URI = 2000
MAX_REDIRECT_URIS = 10
MAX_CONTACTS = 5
DEFAULT_NAME = "Unnamed application"
# `open`: registrations per client IP; a native app registers once per installation.
OPEN_LIMIT = Limit("dcr-ip", 20, timedelta(hours=1))


class InvalidRedirectUriError(OAuthError):
    error = "invalid_redirect_uri"


class InvalidClientMetadataError(OAuthError):
    error = "invalid_client_metadata"


class InvalidSoftwareStatementError(OAuthError):
    error = "invalid_software_statement"


class TooManyRegistrationsError(OAuthError):
    """RFC 6585 §4: 429, with Retry-After (the rate-limit window)."""

    error = "too_many_requests"
    status_code = 429
    retry_after = int(OPEN_LIMIT.window.total_seconds())


@dataclass(frozen=True)
class Requested:
    """The metadata of a registration request, checked (RFC 7591 §2)."""

    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...]
    token_endpoint_auth_method: str
    scopes: tuple[str, ...]
    metadata: dict[str, Any]  # client_name, client_uri, ..., token_endpoint_auth_method

    @property
    def public(self) -> bool:
        return self.token_endpoint_auth_method == "none"  # noqa: S105 - a method name

    @property
    def name(self) -> str:
        return str(self.metadata.get("client_name") or DEFAULT_NAME)


def _strings(body: Mapping[str, Any], name: str, default: Sequence[str]) -> tuple[str, ...]:
    value = body.get(name)
    if value is None:
        return tuple(default)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidClientMetadataError(f"{name} must be an array of strings")
    return tuple(dict.fromkeys(value))


def _text(name: str, value: Any, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise InvalidClientMetadataError(
            f"{name} must be printable text of at most {limit} characters"
        )
    return value


def _https_uri(name: str, value: Any) -> str:
    """RFC 7591 §2: a page people are sent to or an image shown on the consent page: https
    only, so that no script or plain-http content is ever linked from idp's pages."""
    uri = _text(name, value, MAX_URI)
    parts = urlsplit(uri)
    if parts.scheme != "https" or not parts.hostname or " " in uri:
        raise InvalidClientMetadataError(f"{name} must be an https URL")
    return uri


def _metadata(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        if body.get(name) is not None:
            metadata[name] = _text(name, body[name])
    for name in URI_FIELDS:
        if body.get(name) is not None:
            metadata[name] = _https_uri(name, body[name])
    contacts = body.get("contacts")
    if contacts is not None:
        if not isinstance(contacts, list) or len(contacts) > MAX_CONTACTS:
            raise InvalidClientMetadataError(f"contacts must be at most {MAX_CONTACTS} strings")
        metadata["contacts"] = [_text("contacts", contact, 254) for contact in contacts]
    return metadata


def parse_request(body: Any, policy: Policy) -> Requested:
    """The registration request's metadata, checked against ``policy``.

    RFC 7591 §2: unknown metadata is ignored; omitted grant_types mean authorization_code and
    omitted response_types mean code. An omitted token_endpoint_auth_method means
    client_secret_basic (§2) under ``token``; under ``open`` the server substitutes ``none``
    (§3.2.1 lets it replace values), the only method open registration allows."""
    if not isinstance(body, dict):
        raise InvalidClientMetadataError("the request body must be a JSON object")
    if body.get("software_statement") is not None:  # RFC 7591 §2.3: none are trusted here
        raise InvalidSoftwareStatementError("software statements are not accepted")
    for privileged in ("first_party", "admin"):
        if body.get(privileged) not in (None, False):
            raise InvalidClientMetadataError(
                f"{privileged}: only an operator may make such a client (idp clients add)"
            )
    default_method = "none" if policy == "open" else "client_secret_basic"
    method = body.get("token_endpoint_auth_method", default_method)
    if method not in ("none", *AUTH_METHODS):
        raise InvalidClientMetadataError(
            f"token_endpoint_auth_method must be none or one of {', '.join(AUTH_METHODS)}"
        )
    grant_types = _strings(body, "grant_types", ["authorization_code"])
    response_types = _strings(body, "response_types", ["code"])
    redirect_uris = _strings(body, "redirect_uris", [])
    scope = body.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise InvalidClientMetadataError("scope must be a string of space-separated scopes")
    scopes = tuple(dict.fromkeys(scope.split())) if scope else DYNAMIC_SCOPES
    check_policy(policy, method, grant_types, response_types, scopes)
    if "authorization_code" in grant_types and not redirect_uris:
        raise InvalidRedirectUriError("redirect_uris are required for authorization_code")
    if len(redirect_uris) > MAX_REDIRECT_URIS:
        raise InvalidRedirectUriError(f"at most {MAX_REDIRECT_URIS} redirect URIs")
    for uri in redirect_uris:
        if len(uri) > MAX_URI:
            raise InvalidRedirectUriError(f"a redirect URI may have at most {MAX_URI} characters")
        try:
            validate_redirect_uri(uri, public=method == "none")
        except RedirectUriError as error:
            raise InvalidRedirectUriError(str(error)) from None
    metadata = _metadata(body) | {"token_endpoint_auth_method": method}
    return Requested(redirect_uris, grant_types, response_types, method, scopes, metadata)


def check_policy(
    policy: Policy,
    method: str,
    grant_types: Sequence[str],
    response_types: Sequence[str],
    scopes: Sequence[str],
) -> None:
    """RFC 7591 §2.1: grant types and response types must agree; ``open`` (issue 17, MCP
    authorization 2025-11-25) admits only public code-flow clients."""
    if unknown := [grant for grant in grant_types if grant not in GRANT_TYPES]:
        raise InvalidClientMetadataError(f"unsupported grant types: {' '.join(unknown)}")
    if set(response_types) - {"code"}:
        raise InvalidClientMetadataError("response_types may only be code")
    if ("authorization_code" in grant_types) != ("code" in response_types):
        raise InvalidClientMetadataError(
            "response_types code goes with grant_types authorization_code (RFC 7591 §2.1)"
        )
    if refused := [scope for scope in scopes if scope not in DYNAMIC_SCOPES]:
        raise InvalidClientMetadataError(
            f"a registered client may have only the scopes {' '.join(DYNAMIC_SCOPES)}, "
            f"not {' '.join(refused)}"
        )
    if policy == "open":
        if method != "none":
            raise InvalidClientMetadataError(
                "open registration is for public clients only: token_endpoint_auth_method none"
            )
        if refused := [grant for grant in grant_types if grant not in OPEN_GRANT_TYPES]:
            raise InvalidClientMetadataError(
                f"open registration allows only authorization_code and refresh_token, "
                f"not {' '.join(refused)}"
            )


def new_registration_token() -> tuple[str, bytes]:
    """RFC 7592 §3: the registration access token (shown once) and its stored digest."""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def new_client(
    requested: Requested, settings: Settings, now: datetime
) -> tuple[Client, str | None, str]:
    """The client a registration makes, its secret (None when public) and its registration
    access token. Never first-party (consent is always asked) and never admin."""
    try:
        client, secret = register(
            name=requested.name,
            redirect_uris=requested.redirect_uris,
            grant_types=requested.grant_types,
            scopes=requested.scopes,
            audiences=(),
            post_logout_redirect_uris=(),
            public=requested.public,
            first_party=False,
            access_token_ttl=None,
            refresh_token_ttl=None,
            settings=settings,
            now=now,
        )
    except RegistrationError as error:
        raise InvalidClientMetadataError(str(error)) from None
    token, token_hash = new_registration_token()
    client = replace(
        client,
        registration="dynamic",
        metadata=requested.metadata,
        registration_token_hash=token_hash,
    )
    return client, secret, token


def updated_client(client: Client, requested: Requested, settings: Settings) -> Client:
    """RFC 7592 §2.2: the registration's metadata replaced as a whole; a public client stays
    public and a confidential one confidential (its secret is not rotated here)."""
    if requested.public != client.public:
        raise InvalidClientMetadataError(
            "token_endpoint_auth_method cannot change between none and a secret"
        )
    fresh, _, _ = new_client(requested, settings, client.created_at)
    return replace(
        client,
        name=fresh.name,
        redirect_uris=fresh.redirect_uris,
        grant_types=fresh.grant_types,
        scopes=fresh.scopes,
        metadata=fresh.metadata,
    )


def check_update_identity(body: Any, client: Client, secret_matches: bool | None) -> None:
    """RFC 7592 §2.2: the body's client_id must be the client's; a client_secret, if sent,
    must be its current one (``secret_matches`` None: none was sent)."""
    if not isinstance(body, dict) or body.get("client_id") != client.client_id:
        raise InvalidClientMetadataError("client_id must be the registered client's")
    if secret_matches is False:
        raise InvalidClientMetadataError("client_secret does not match the registered one")


def token_matches(presented: str | None, stored: bytes | None) -> bool:
    """A registration access token against the stored digest, in constant time; a client
    without one (not registered dynamically) is compared with a dummy and never matches."""
    expected = stored or b"\x00" * 32
    given = digest(presented or "")
    return hmac.compare_digest(given, expected) and stored is not None and presented is not None


def registration_body(
    client: Client, *, issuer: str, secret: str | None = None, token: str | None = None
) -> dict[str, Any]:
    """RFC 7591 §3.2.1 / RFC 7592 §3: the client's information, with the secret and the
    registration access token only when they were just made."""
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created_at.timestamp()),
        "redirect_uris": list(client.redirect_uris),
        "grant_types": list(client.grant_types),
        "response_types": ["code"] if "authorization_code" in client.grant_types else [],
        "scope": " ".join(client.scopes),
        "registration_client_uri": f"{issuer}{REGISTRATION_PATH}/{client.client_id}",
        **client.metadata,
    }
    body.setdefault("client_name", client.name)
    if secret is not None:
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0  # RFC 7591 §3.2.1: it does not expire
    if token is not None:
        body["registration_access_token"] = token
    return body
