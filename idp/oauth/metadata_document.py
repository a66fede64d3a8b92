"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document-00, which the MCP
authorization spec 2025-11-25 names): a client whose ``client_id`` is an https URL publishes its
RFC 7591 metadata there. The rules only: what such a client_id may be (§3), which addresses may
be fetched (§6.5), what the document must say (§4.1), and how long it is kept (§4.4).
The fetch is idp.oauth.document_fetch; the clients row, idp.db.metadata_documents.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from idp.db.clients import Client
from idp.oauth.redirect_uris import RedirectUriError, validate_redirect_uri

# §6.6: a document is small; 5 KiB is the size the draft suggests as a limit.
MAX_DOCUMENT_BYTES = 5 * 1024
FETCH_TIMEOUT_SECONDS = 5.0
# §4.4: the HTTP caching headers decide, within bounds of idp's choosing: at least 5 minutes
# (a document saying no-store would otherwise be fetched at every request), at most a day (a
# client's changed or withdrawn document is seen by the next day).
MIN_CACHE = timedelta(minutes=5)
MAX_CACHE = timedelta(hours=24)
# What a document's client may ask for: the user's own claims and refresh tokens, never the
# management API's scopes nor roles (a program's say-so grants nothing an operator would).
DOCUMENT_SCOPES = ("openid", "profile", "email", "offline_access")
DOCUMENT_GRANTS = ("authorization_code", "refresh_token")
MAX_NAME_LENGTH = 100
MAX_URL_LENGTH = 2048
MAX_REDIRECT_URIS = 20
# §4.1 with RFC 7591 §2: methods built on a secret shared with the AS.
_SHARED_SECRET_METHODS = frozenset(
    {"client_secret_basic", "client_secret_post", "client_secret_jwt"}
)
_NETWORKS = ipaddress.IPv4Network | ipaddress.IPv6Network
# Never fetched (§6.5): beside what ``ipaddress`` flags (private, link-local including the
# metadata service 169.254.169.254, loopback, multicast, reserved, unspecified), CGNAT space.
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598


class DocumentError(Exception):
    """The client's metadata document cannot be used; the message says why, for the person
    on the error page or the client reading ``invalid_client``."""


def is_document_url(client_id: str) -> bool:
    """Whether ``client_id`` names a metadata document (§3: an https URL); other client ids are
    looked up as registered."""
    return client_id.startswith("https://")


def check_client_id_url(url: str) -> None:
    """§3: https, a path, no dot segments, no fragment, no user or password. Compared as given,
    never normalised (§4.1: simple string comparison)."""
    if len(url) > MAX_URL_LENGTH or not url.isprintable() or " " in url:
        raise DocumentError("the client_id URL is too long or has characters a URL cannot have")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise DocumentError("the client_id must be an https URL with a host")
    if parts.path in ("", "/"):
        raise DocumentError("the client_id URL must have a path (draft §3)")
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        raise DocumentError("the client_id URL must not have . or .. path segments (draft §3)")
    if parts.fragment or "#" in url:
        raise DocumentError("the client_id URL must not have a fragment (draft §3)")
    if parts.username is not None or parts.password is not None:
        raise DocumentError("the client_id URL must not have a user or password (draft §3)")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise DocumentError("the client_id URL has an invalid port") from None


def address_allowed(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_loopback: bool
) -> bool:
    """§6.5 (SSRF): only public unicast addresses are fetched; loopback only when the operator
    allows it (IDP_CIMD_ALLOW_LOOPBACK, development and tests). IPv4-mapped IPv6 addresses are
    judged as the IPv4 address they carry."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return allow_loopback
    return not (
        address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in _SHARED_ADDRESS_SPACE
        or not address.is_global
    )


def cache_expiry(headers: Mapping[str, str], now: datetime) -> datetime:
    """§4.4: when the document must be fetched again, from ``Cache-Control`` (no-store or
    no-cache: as soon as allowed; ``max-age``) or else ``Expires`` (RFC 9111 §5.2, §5.3),
    clamped to [MIN_CACHE, MAX_CACHE]; no header: MIN_CACHE."""
    lifetime = MIN_CACHE
    directives = {
        name.strip().lower(): value.strip().strip('"')
        for name, _, value in (
            part.partition("=") for part in headers.get("cache-control", "").split(",")
        )
        if name.strip()
    }
    if "no-store" in directives or "no-cache" in directives:
        lifetime = MIN_CACHE
    elif directives.get("max-age", "").isdigit():
        lifetime = timedelta(seconds=min(int(directives["max-age"]), 10**7))
    elif headers.get("expires"):
        try:
            expires = parsedate_to_datetime(headers["expires"])
        except (TypeError, ValueError):
            expires = None
        if expires is not None and expires.tzinfo is not None:
            lifetime = expires - now
    return now + min(max(lifetime, MIN_CACHE), MAX_CACHE)


def _text(document: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.isprintable() or not 0 < len(value) <= limit:
        raise DocumentError(f"{name} must be printable text of at most {limit} characters")
    return value


def _https_url(document: Mapping[str, Any], name: str) -> str | None:
    value = _text(document, name, MAX_URL_LENGTH)
    if value is not None and (urlsplit(value).scheme != "https" or not urlsplit(value).hostname):
        raise DocumentError(f"{name} must be an https URL")
    return value


def _words(document: Mapping[str, Any], name: str) -> list[str] | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DocumentError(f"{name} must be a list of strings")
    return list(dict.fromkeys(value))


def _redirect_uris(document: Mapping[str, Any]) -> tuple[str, ...]:
    """§4.1, RFC 7591 §2: the document's redirect URIs are the only ones accepted; each must be
    one idp would register for a public client (idp.oauth.redirect_uris)."""
    uris = _words(document, "redirect_uris")
    if not uris:
        raise DocumentError("the document must list redirect_uris")
    if len(uris) > MAX_REDIRECT_URIS:
        raise DocumentError(f"the document lists more than {MAX_REDIRECT_URIS} redirect_uris")
    for uri in uris:
        if len(uri) > MAX_URL_LENGTH:
            raise DocumentError("a redirect URI is too long")
        try:
            validate_redirect_uri(uri, public=True)  # §4.1: never a secret (_auth_method)
        except RedirectUriError as error:
            raise DocumentError(str(error)) from None
    return tuple(uris)


def _auth_method(document: Mapping[str, Any]) -> None:
    """§4.1: a document's client never holds a shared secret (client_secret and
    ``client_secret_*`` methods are refused); RFC 7591 §2's default client_secret_basic is not
    assumed, as a document has no secret to go with it. idp supports none other than ``none``
    (private_key_jwt is refused as unsupported)."""
    if "client_secret" in document or "client_secret_expires_at" in document:
        raise DocumentError("a metadata document must not contain a client_secret (draft §4.1)")
    method = document.get("token_endpoint_auth_method", "none")
    if method in _SHARED_SECRET_METHODS:
        raise DocumentError(
            f"token_endpoint_auth_method {method} uses a shared secret, which a metadata "
            "document's client cannot have (draft §4.1)"
        )
    if method != "none":
        raise DocumentError(
            f"token_endpoint_auth_method {method!r} is not supported: use none (a public client)"
        )


def _grants(document: Mapping[str, Any]) -> tuple[str, ...]:
    """RFC 7591 §2: grant_types defaults to authorization_code; response_types to code."""
    grants = _words(document, "grant_types") or ["authorization_code"]
    refused = [grant for grant in grants if grant not in DOCUMENT_GRANTS]
    if refused or "authorization_code" not in grants:
        raise DocumentError("grant_types must be authorization_code, optionally with refresh_token")
    response_types = _words(document, "response_types") or ["code"]
    if response_types != ["code"]:
        raise DocumentError("response_types must be code")
    return tuple(grants)


def _scopes(document: Mapping[str, Any]) -> tuple[str, ...]:
    """RFC 7591 §2 ``scope``: what the client may ask for, within DOCUMENT_SCOPES; without it,
    all of them."""
    scope = _text(document, "scope", 1000)
    if scope is None:
        return DOCUMENT_SCOPES
    asked = scope.split()
    refused = [name for name in asked if name not in DOCUMENT_SCOPES]
    if refused:
        raise DocumentError(f"scope not available to such clients: {' '.join(refused)}")
    return tuple(dict.fromkeys(asked))


def parse_document(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise DocumentError("the document is not JSON") from None
    if not isinstance(document, dict):
        raise DocumentError("the document is not a JSON object")
    return document


def client_from_document(
    url: str, document: Mapping[str, Any], *, now: datetime, expires_at: datetime
) -> Client:
    """The client that the document fetched from ``url`` describes, or DocumentError.

    §4.1: its ``client_id`` must be ``url`` exactly (simple string comparison, RFC 3986
    §6.2.1), so a document cannot speak for another URL. Public, never first-party, never admin:
    a program wrote it, so the consent page marks it unverified (``Client.unverified``)."""
    if document.get("client_id") != url:
        raise DocumentError(
            "the document's client_id is not the URL it was fetched from (draft §4.1)"
        )
    _auth_method(document)
    redirect_uris = _redirect_uris(document)
    grants = _grants(document)
    scopes = _scopes(document)
    name = _text(document, "client_name", MAX_NAME_LENGTH) or urlsplit(url).hostname or url
    metadata = {
        key: value
        for key in ("client_uri", "logo_uri")
        if (value := _https_url(document, key)) is not None
    }
    return Client(
        client_id=url,
        name=name,
        secret_hash=None,
        redirect_uris=redirect_uris,
        grant_types=grants,
        scopes=scopes,
        audiences=(),
        post_logout_redirect_uris=(),
        first_party=False,
        access_token_ttl=None,
        refresh_token_ttl=None,
        disabled=False,
        created_at=now,
        registration="metadata_document",
        metadata=metadata,
        metadata_expires_at=expires_at,
        updated_at=now,
    )
