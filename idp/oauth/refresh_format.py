"""What a refresh token is made of: ``<handle>.<generation>.<secret>``.

The handle (128 random bits) names the token's family and stays the same across its rotations;
the generation counts them (0 for the code exchange's token); the secret is 256 random bits. The
server keeps only digests of the handle and of the whole current token (migration 0010).

The handle lets a rotation find its family's row by an index that never changes. The generation
tells an old token of the family, presented after it was replaced (a reuse, RFC 9700 §4.14.2),
from a current token that was mangled on its way (a wrong secret with the current generation),
which must not cost the user their grant. Only holders of the family's tokens know its handle.
Tokens issued before the handle existed have no ``.``: the whole token is their handle, and
their generation is 0.
"""

from __future__ import annotations

import secrets

from idp.hashing import digest

MAX_GENERATION_DIGITS = 9  # a family refreshed every second for 30 years stays within


class Presented:
    """A token, presented or about to be issued, with the digests the server stores."""

    __slots__ = ("generation", "handle", "handle_hash", "token", "token_hash")

    def __init__(
        self, token: str, handle: str, generation: int, handle_hash: bytes | None = None
    ) -> None:
        self.token, self.handle, self.generation = token, handle, generation
        self.handle_hash = digest(handle) if handle_hash is None else handle_hash
        self.token_hash = digest(token)


def parse(token: str) -> Presented | None:
    """None for what idp never issues as a refresh token."""
    parts = token.split(".")
    if len(parts) == 1:
        return Presented(token, token, 0)  # issued before migration 0010
    if len(parts) != 3:
        return None
    handle, generation, _ = parts
    if not (generation.isascii() and generation.isdigit()):
        return None
    if len(generation) > MAX_GENERATION_DIGITS:
        return None
    return Presented(token, handle, int(generation))


def first() -> Presented:
    """A new family's first token."""
    return _new(secrets.token_urlsafe(16), 0)


def successor(presented: Presented) -> Presented:
    """The token that replaces ``presented``: its family's next generation."""
    return _new(presented.handle, presented.generation + 1, presented.handle_hash)


def _new(handle: str, generation: int, handle_hash: bytes | None = None) -> Presented:
    token = f"{handle}.{generation}.{secrets.token_urlsafe(32)}"
    return Presented(token, handle, generation, handle_hash)
