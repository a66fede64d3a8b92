"""What a presented token is, whatever its type: idp's own JWT access tokens are verified with
the keyring's keys (no database), refresh tokens are opaque and found by their handle's digest
(idp.oauth.refresh_format). ``token_type_hint`` (RFC 7009 §2.1, RFC 7662 §2.1) decides only
which is tried first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from idp.db import token_status
from idp.db.pool import Executor
from idp.db.token_status import RefreshState
from idp.oauth import refresh_format
from idp.oauth.access_token import verify_access_token
from idp.oauth.context import TokenContext
from idp.oauth.errors import InvalidTokenError


@dataclass(frozen=True)
class AccessToken:
    claims: dict[str, Any]


@dataclass(frozen=True)
class RefreshToken:
    state: RefreshState


Found = AccessToken | RefreshToken | None


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


async def find_token(db: Executor, token: str, hint: str | None, context: TokenContext) -> Found:
    order = ["refresh_token", "access_token"] if hint == "refresh_token" else [
        "access_token", "refresh_token",
    ]  # fmt: skip
    for kind in order:
        if kind == "access_token" and _looks_like_jwt(token):
            try:
                claims = verify_access_token(
                    token,
                    context.verification_keys(),
                    issuer=context.settings.issuer,
                    now=context.clock.now(),
                    skew=context.settings.clock_skew,
                    audience=None,  # any of ours: resource servers introspect their tokens
                )
            except InvalidTokenError:
                continue
            return AccessToken(claims)
        if kind == "refresh_token" and len(token) <= 256:
            presented = refresh_format.parse(token)
            if presented is None:
                continue
            state = await token_status.refresh_state(
                db, presented.handle_hash, presented.token_hash
            )
            if state is not None:
                return RefreshToken(state)
    return None


def subject_user_id(claims: dict[str, Any]) -> uuid.UUID | None:
    """The user an access token speaks for; None for client_credentials (sub is the client)."""
    if claims.get("sub") == claims.get("client_id"):
        return None
    try:
        return uuid.UUID(str(claims.get("sub")))
    except ValueError:
        return None
