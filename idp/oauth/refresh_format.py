"""What a refresh token is made of: ``<handle>.<generation>.<secret>``.

The handle (128 random bits) names the token's family and stays the same across its rotations;
the generation counts them (0 for the code exchange's token); the secret is derived from both
with a server key, ``base64url(HMAC-SHA256(K, sha256(handle) || generation as 8 bytes))``, K
derived from IDP_KEY_ENCRYPTION_KEY for this use only (``secret_key``). The server keeps only
digests of the handle and of the whole current token (migration 0010), so even with K the
database yields no token.

The handle lets a rotation find its family's row by an index that never changes. The generation
tells an old token of the family, presented after it was replaced (a reuse, RFC 9700 §4.14.2),
from a current token that was mangled on its way (a wrong secret with the current generation),
which must not cost the user their grant. The derived secret proves that an old token is one
the family had (``genuine``), in constant time and with nothing stored per generation: a handle
alone (what a token cut short in a log shows, say) makes no token, and so revokes nothing.

Families started before secrets were derived hold random ones until their next rotation: their
previous token is still known by its digest; older ones cannot be verified, so they are refused
without revoking anything (such a reuse goes undetected; it is bounded by the family's
lifetime). A new IDP_KEY_ENCRYPTION_KEY does the same to the earlier generations derived with
the old one; current tokens are checked by digest and keep working.
"""

from __future__ import annotations

import base64
import functools
import hmac
import secrets

from idp.hashing import digest
from idp.keys.crypto import purpose_key
from idp.settings import Settings

MAX_GENERATION_DIGITS = 9  # a family refreshed every second for 30 years stays within


class Presented:
    """A token, presented or about to be issued, with the digests the server stores."""

    __slots__ = ("generation", "handle", "handle_hash", "secret", "token", "token_hash")

    def __init__(
        self,
        token: str,
        handle: str,
        generation: int,
        secret: str,
        handle_hash: bytes | None = None,
    ) -> None:
        self.token, self.handle, self.generation, self.secret = token, handle, generation, secret
        self.handle_hash = digest(handle) if handle_hash is None else handle_hash
        self.token_hash = digest(token)


def secret_key(settings: Settings) -> bytes:
    """K, the key the secrets are derived with: the key-encryption key's, for this use only."""
    assert settings.key_encryption_key is not None
    return _derive_key(settings.key_encryption_key)


@functools.lru_cache(maxsize=4)  # one key-encryption key per process (tests: one per test)
def _derive_key(key_encryption_key: bytes) -> bytes:
    return purpose_key(key_encryption_key, b"idp refresh secret")


def parse(token: str) -> Presented | None:
    """None for what idp never issues as a refresh token, a family's handle alone included."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    handle, generation, secret = parts
    if not (generation.isascii() and generation.isdigit()):
        return None
    if len(generation) > MAX_GENERATION_DIGITS:
        return None
    return Presented(token, handle, int(generation), secret)


def genuine(presented: Presented, key: bytes) -> bool:
    """Whether the family of the handle issued this very token (K = ``key``), in constant
    time."""
    expected = _secret(key, presented.handle_hash, presented.generation).encode()
    return hmac.compare_digest(expected, presented.secret.encode("utf-8", "replace"))


def first(key: bytes) -> Presented:
    """A new family's first token."""
    handle = secrets.token_urlsafe(16)
    return _new(key, handle, 0, digest(handle))


def successor(presented: Presented, key: bytes) -> Presented:
    """The token that replaces ``presented``: its family's next generation."""
    return _new(key, presented.handle, presented.generation + 1, presented.handle_hash)


def _new(key: bytes, handle: str, generation: int, handle_hash: bytes) -> Presented:
    secret = _secret(key, handle_hash, generation)
    return Presented(f"{handle}.{generation}.{secret}", handle, generation, secret, handle_hash)


def _secret(key: bytes, handle_hash: bytes, generation: int) -> str:
    mac = hmac.digest(key, handle_hash + generation.to_bytes(8, "big"), "sha256")
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
