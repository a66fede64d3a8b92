"""What the grants need from the running provider, without knowing about HTTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from joserfc.jwk import KeySet

from idp.clock import Clock
from idp.oauth.deny_list import DenyList
from idp.oauth.resource_registry import ResourceRegistry
from idp.oauth.user_cache import UserCache
from idp.settings import Settings


class Signer(Protocol):
    """Signs ``claims`` as a JWS with the active key, its ``kid`` and ``typ`` in the header
    (``Keyring.sign``)."""

    def __call__(self, claims: dict[str, Any], *, typ: str = ...) -> str: ...


@dataclass(frozen=True)
class TokenContext:
    settings: Settings
    clock: Clock
    pool: asyncpg.Pool
    sign: Signer
    verification_keys: Callable[[], KeySet]  # the published keys, from memory
    deny_list: DenyList  # deny-listed access tokens, from memory when it is complete
    users: UserCache  # users by id, from memory while changes are announced
    resources: ResourceRegistry  # RFC 8707 resources registered clients may name, in memory
