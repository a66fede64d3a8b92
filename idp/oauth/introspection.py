"""Token introspection (RFC 7662): ``active`` and the token's claims for live tokens,
``{"active": false}`` for anything else — never an error for a bad token (§2.2)."""

from __future__ import annotations

from typing import Any

from idp.oauth.context import TokenContext
from idp.oauth.params import Params
from idp.oauth.token_lookup import AccessToken, RefreshToken, find_token, subject_user_id

INACTIVE: dict[str, Any] = {"active": False}
_ACCESS_FIELDS = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti")


async def introspect(params: Params, context: TokenContext) -> dict[str, Any]:
    token = params.require("token")
    found = await find_token(context.pool, token, params.get("token_type_hint"), context)
    if isinstance(found, AccessToken):
        claims = found.claims
        user_id = subject_user_id(claims)
        if await context.deny_list.revoked(claims["jti"]):
            return INACTIVE
        if user_id is not None:  # a user's token: the user must still be able to sign in
            user = await context.users.find(user_id)
            if user is None or user.disabled:
                return INACTIVE
        body = {"active": True, "token_type": "Bearer"}
        body.update({name: claims[name] for name in _ACCESS_FIELDS if name in claims})
        return body
    if isinstance(found, RefreshToken) and found.state.active(context.clock.now()):
        refresh = found.state.family
        return {
            "active": True,
            "token_type": "refresh_token",
            "scope": " ".join(refresh.scopes),
            "client_id": refresh.client_id,
            "sub": str(refresh.user_id),
            "aud": refresh.audience,
            "iss": context.settings.issuer,
            "iat": int(refresh.created_at.timestamp()),
            "exp": int(min(refresh.expires_at, refresh.idle_expires_at).timestamp()),
        }
    return INACTIVE
