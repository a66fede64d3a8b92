"""The client_credentials grant (RFC 6749 §4.4): an access token for the client itself.

No database write and no slow hash on this path: the client comes from the in-memory registry
and the token is signed by the in-memory keyring.
"""

from __future__ import annotations

from typing import Any

from idp.db.clients import Client
from idp.oauth.access_token import (
    ACCESS_TOKEN_TYPE,
    USER_SCOPES,
    access_token_claims,
    access_token_ttl,
    grant_scope,
    resolve_audience,
)
from idp.oauth.context import TokenContext
from idp.oauth.errors import InvalidScopeError
from idp.oauth.params import Params, parse_scope

GRANT_TYPE = "client_credentials"


async def exchange(params: Params, client: Client, context: TokenContext) -> dict[str, Any]:
    requested = parse_scope(params.get("scope"))
    if requested is not None and USER_SCOPES & set(requested):
        raise InvalidScopeError("user scopes need a user: use the authorization code flow")
    default = [scope for scope in client.scopes if scope not in USER_SCOPES]
    scopes = grant_scope(requested, client, default=default)
    audience = resolve_audience(
        client,
        [*params.all("resource"), *params.all("audience")],
        issuer=context.settings.issuer,
        scopes=scopes,
        # only a client registered by a program reads the allow-list (from memory)
        resources=await context.resources.allowed() if client.unverified else frozenset(),
    )
    ttl = access_token_ttl(client, context.settings.access_token_ttl)
    claims = access_token_claims(
        issuer=context.settings.issuer,
        subject=client.client_id,  # RFC 9068 §2.2: no resource owner, the client is the subject
        client_id=client.client_id,
        audience=audience,
        scopes=scopes,
        now=context.clock.now(),
        ttl=ttl,
    )
    response: dict[str, Any] = {
        "access_token": context.sign(claims, typ=ACCESS_TOKEN_TYPE),
        "token_type": "Bearer",
        "expires_in": int(ttl.total_seconds()),
    }
    if scopes:
        response["scope"] = " ".join(scopes)
    return response
