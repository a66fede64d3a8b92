"""The authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.5, OIDC Core §3.1.3).

The code is consumed by one conditional UPDATE, so of concurrent exchanges exactly one wins. A
code presented again is a replay: what its first exchange issued is revoked (RFC 6749 §4.1.2).
The whole exchange is one transaction.
"""

from __future__ import annotations

from typing import Any

from idp.db import authorization_codes, users
from idp.db.clients import Client
from idp.db.pool import Connection
from idp.hashing import digest
from idp.oauth.context import TokenContext
from idp.oauth.errors import InvalidGrantError
from idp.oauth.id_token import id_token_claims
from idp.oauth.params import Params
from idp.oauth.pkce import verify_pkce
from idp.oauth.tokens import ACCESS_TOKEN_TYPE, access_token_claims, access_token_ttl

GRANT_TYPE = "authorization_code"


async def exchange(params: Params, client: Client, context: TokenContext) -> dict[str, Any]:
    code = params.require("code")
    redirect_uri = params.require("redirect_uri")
    verifier = params.require("code_verifier")
    async with context.pool.acquire() as connection, connection.transaction():
        # Failures are returned, not raised, so that the transaction still commits: a code
        # is spent by any attempt (no guessing the verifier), and a replay's revocation stays.
        outcome = await _redeem(connection, digest(code), redirect_uri, verifier, client, context)
    if isinstance(outcome, InvalidGrantError):
        raise outcome
    return outcome


async def _redeem(
    connection: Connection,
    code_hash: bytes,
    redirect_uri: str,
    verifier: str,
    client: Client,
    context: TokenContext,
) -> dict[str, Any] | InvalidGrantError:
    settings, now = context.settings, context.clock.now()
    grant = await authorization_codes.consume(connection, code_hash, client.client_id, now)
    if grant is None:
        until = now + settings.longest_token_ttl
        if await authorization_codes.revoke_replayed(
            connection, code_hash, client.client_id, until
        ):
            return InvalidGrantError("the code was used already; its tokens are revoked")
        return InvalidGrantError("the code is invalid or expired")
    if grant.redirect_uri != redirect_uri:
        return InvalidGrantError("redirect_uri does not match the authorization request")
    if not verify_pkce(verifier, grant.code_challenge):
        return InvalidGrantError("code_verifier does not match the code_challenge")
    user = await users.by_id(connection, grant.user_id)
    if user is None or user.disabled:
        return InvalidGrantError("the user can no longer sign in")

    ttl = access_token_ttl(client, settings.access_token_ttl)
    claims = access_token_claims(
        issuer=settings.issuer,
        subject=str(user.id),
        client_id=client.client_id,
        audience=grant.audience,
        scopes=grant.scopes,
        now=now,
        ttl=ttl,
        extra={
            "auth_time": int(grant.auth_time.timestamp()),
            "sid": grant.sid,
            "roles": list(user.roles),  # RFC 9068 §2.2.3.1
        },
    )
    access_token = context.sign(claims, typ=ACCESS_TOKEN_TYPE)
    response: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": int(ttl.total_seconds()),
        "scope": " ".join(grant.scopes),
    }
    if "openid" in grant.scopes:
        response["id_token"] = context.sign(
            id_token_claims(
                issuer=settings.issuer,
                user=user,
                client_id=client.client_id,
                scopes=grant.scopes,
                nonce=grant.nonce,
                auth_time=grant.auth_time,
                sid=grant.sid,
                access_token=access_token,
                now=now,
                ttl=settings.access_token_ttl,
            ),
            typ="JWT",
        )
    await authorization_codes.record_issued(connection, code_hash, [claims["jti"]])
    return response
