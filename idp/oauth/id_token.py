"""ID tokens (OIDC Core §2, §3.1.3.6) and the scope claims (§5.4)."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from idp.db.users import User

# OIDC Core §3.1.3.6: the hash of the alg's JWS hash function; Ed25519 signs with SHA-512.
_AT_HASH = {"RS256": hashlib.sha256, "PS256": hashlib.sha256, "ES256": hashlib.sha256}


def at_hash(access_token: str) -> str:
    """The left half of the hash of the access token's ASCII octets, base64url, with the hash of
    the algorithm the access token was signed with (read from its own header)."""
    hash_function = _hash_of(access_token.partition(".")[0])
    digest = hash_function(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


@functools.lru_cache(maxsize=64)
def _hash_of(header: str) -> Callable[[bytes], Any]:
    """The hash of the alg a header segment names: one per signing key and typ, so cached."""
    alg = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["alg"]
    return _AT_HASH.get(alg, hashlib.sha512)


def scope_claims(user: User, scopes: list[str]) -> dict[str, Any]:
    """OIDC Core §5.4: profile → name, email → email and email_verified; roles → roles."""
    claims: dict[str, Any] = {}
    if "profile" in scopes and user.name is not None:
        claims["name"] = user.name
    if "email" in scopes:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified
    if "roles" in scopes:
        claims["roles"] = list(user.roles)
    return claims


def id_token_claims(
    *,
    issuer: str,
    user: User,
    client_id: str,
    scopes: list[str],
    nonce: str | None,
    auth_time: datetime,
    sid: str,
    amr: list[str],
    acr: str,
    access_token: str,
    now: datetime,
    ttl: timedelta,
) -> dict[str, Any]:
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(user.id),
        "aud": client_id,
        "azp": client_id,
        "exp": issued + int(ttl.total_seconds()),
        "iat": issued,
        "auth_time": int(auth_time.timestamp()),
        "sid": sid,
        "amr": amr,  # OIDC Core §2, RFC 8176 values
        "acr": acr,
        "at_hash": at_hash(access_token),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    claims.update(scope_claims(user, scopes))
    return claims
