"""Client authentication at the token endpoint (RFC 6749 §2.3.1): client_secret_basic and
client_secret_post. Secrets are 256-bit random, so a SHA-256 digest compared in constant time is
the right check (a slow hash buys nothing against a secret that cannot be guessed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote_plus

from idp.db.clients import Client
from idp.oauth.errors import InvalidClientError, InvalidRequestError
from idp.oauth.params import Params

AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# Compared against when the client is unknown, so both cases do the same work.
_DUMMY_DIGEST = hashlib.sha256(b"no such client").digest()


def new_secret() -> tuple[str, bytes]:
    """A client secret (shown once) and the digest that is stored."""
    secret = secrets.token_urlsafe(32)
    return secret, hash_secret(secret)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class PresentedCredentials:
    client_id: str
    secret: str | None
    method: str  # client_secret_basic, client_secret_post, or none


def presented_credentials(authorization: str | None, form: Params) -> PresentedCredentials:
    """Read what the client presents; RFC 6749 §2.3: one method only."""
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClientError("only Basic client authentication is supported")
        if form_secret is not None:
            raise InvalidRequestError("use one client authentication method, not two")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):  # binascii.Error, or non-ASCII input
            raise InvalidClientError("malformed Basic credentials") from None
        raw_id, colon, raw_secret = decoded.partition(":")
        if not colon:
            raise InvalidClientError("malformed Basic credentials")
        # RFC 6749 §2.3.1: both parts are form-urlencoded before being joined.
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if form_id is not None and form_id != client_id:
            raise InvalidClientError("client_id does not match the authenticated client")
        return PresentedCredentials(client_id, secret, "client_secret_basic")
    if form_id is None:
        raise InvalidClientError("client authentication is required")
    if form_secret is not None:
        return PresentedCredentials(form_id, form_secret, "client_secret_post")
    return PresentedCredentials(form_id, None, "none")


async def authenticate(
    presented: PresentedCredentials, find: Callable[[str], Awaitable[Client | None]]
) -> Client:
    """The client, if it exists, is enabled, and proved its secret (or is public and sent none)."""
    client = await find(presented.client_id)
    stored = client.secret_hash if client is not None else None
    if presented.secret is not None:
        digest = hash_secret(presented.secret)
        matches = hmac.compare_digest(digest, stored or _DUMMY_DIGEST)
        if client is None or stored is None or not matches:
            raise InvalidClientError("client authentication failed")
    elif client is None or not client.public:
        raise InvalidClientError("client authentication failed")
    if client.disabled:
        raise InvalidClientError("client authentication failed")
    return client
