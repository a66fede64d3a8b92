"""Token introspection (RFC 7662): ``active`` and the token's claims for live tokens,
``{"active": false}`` for anything else — never an error for a bad token (§2.2).

Who may learn what (§2.1, §4): a client learns about a refresh token only if it was issued to it,
and about an access token only if it was issued to it (``client_id``) or the client is registered
as a resource server for one of the token's audiences (``introspect_audiences``). Any other token
gets the same ``{"active": false}`` as an unknown one, so a caller cannot tell them apart. The
check reads the authenticated client, which is in memory: no query is added.
"""

from __future__ import annotations

from typing import Any

from idp.db.clients import Client
from idp.oauth.context import TokenContext
from idp.oauth.params import Params
from idp.oauth.presented_token import AccessToken, RefreshToken, find_token, subject_user_id

INACTIVE: dict[str, Any] = {"active": False}
# RFC 7662 §2.2 allows any claim beside these: the JWT's own RFC 9068 claims a resource server
# decides by (roles, acr, auth_time), so introspecting and verifying the JWT tell it the same.
_ACCESS_FIELDS = (
    *("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti"),
    *("auth_time", "acr", "roles"),
)


def may_introspect_access_token(client: Client, claims: dict[str, Any], *, issuer: str) -> bool:
    """RFC 7662 §4: the token's own client, or a resource server the token is meant for.

    The issuer among a token's audiences makes no other client its resource server: it is
    idp's own audience (/userinfo), and registration refuses it, but an older registration may
    hold it."""
    if claims.get("client_id") == client.client_id:
        return True
    aud = claims["aud"]  # a string or a list of strings (checked by verify_access_token)
    audiences = [aud] if isinstance(aud, str) else aud
    return any(
        audience != issuer and audience in client.introspect_audiences for audience in audiences
    )


async def introspect(params: Params, client: Client, context: TokenContext) -> dict[str, Any]:
    token = params.require("token")
    found = await find_token(context.pool, token, params.get("token_type_hint"), context)
    if isinstance(found, AccessToken):
        claims = found.claims
        if not may_introspect_access_token(client, claims, issuer=context.settings.issuer):
            return INACTIVE
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
    if (
        isinstance(found, RefreshToken)
        # §2.1: only its own client's (the rule's OWN_CLIENT condition)
        and found.state.active(context.clock.now(), client.client_id)
    ):
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
