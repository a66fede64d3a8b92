"""Token revocation (RFC 7009).

A refresh token revokes its whole family (and deny-lists every access token issued from it); an
access token is deny-listed by ``jti`` until its ``exp``. Unknown, invalid or expired tokens get
the same 200 as revoked ones (§2.2). A token issued to another client is refused (§2.1).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from idp.audit_trail import audited
from idp.db import refresh_tokens, token_status
from idp.db.clients import Client
from idp.oauth.context import TokenContext
from idp.oauth.errors import UnauthorizedClientError
from idp.oauth.params import Params
from idp.oauth.presented_token import AccessToken, RefreshToken, find_token


async def revoke(params: Params, client: Client, context: TokenContext) -> None:
    token = params.require("token")
    hint = params.get("token_type_hint")
    now = context.clock.now()
    async with context.pool.acquire() as connection, audited(connection) as trail:
        found = await find_token(connection, token, hint, context)
        if isinstance(found, RefreshToken):
            if found.state.family.client_id != client.client_id:
                raise UnauthorizedClientError("the token was issued to another client")
            deny_until = context.settings.deny_until(now)
            denied = await refresh_tokens.revoke_family(
                connection, found.state.family.id, "revoked by the client", now, deny_until
            )
            trail.after_commit(functools.partial(context.deny_list.add, denied))
            subject = str(found.state.family.id)
        elif isinstance(found, AccessToken):
            if found.claims.get("client_id") != client.client_id:
                raise UnauthorizedClientError("the token was issued to another client")
            # Accepted until exp + skew: deny-listed that long, or the janitor revives it.
            until = datetime.fromtimestamp(int(found.claims["exp"]), UTC)
            until += context.settings.clock_skew
            await token_status.deny_access_token(connection, found.claims["jti"], until)
            entry = [(found.claims["jti"], until)]
            trail.after_commit(functools.partial(context.deny_list.add, entry))
            subject = str(found.claims["jti"])
        else:
            return  # RFC 7009 §2.2: invalid tokens do not cause an error
        await trail.record(
            now=now,
            actor=f"client:{client.client_id}",
            action="token.revoked",
            subject=subject,
            details={
                "type": "refresh_token" if isinstance(found, RefreshToken) else "access_token"
            },
        )
