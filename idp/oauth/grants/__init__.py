"""The grants of the token endpoint, and which one a request gets, for which client (RFC 6749
§3.2, §5). ``exchange`` is the token endpoint's whole protocol side."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from idp.db.clients import Client
from idp.metrics import TOKENS_ISSUED
from idp.oauth.context import TokenContext
from idp.oauth.errors import (
    InvalidClientError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from idp.oauth.grants import authorization_code, client_credentials, refresh_token
from idp.oauth.params import Params

Grant = Callable[[Params, Client, TokenContext], Awaitable[dict[str, Any]]]

CONFIDENTIAL_ONLY = frozenset({client_credentials.GRANT_TYPE})
GRANTS: dict[str, Grant] = {
    authorization_code.GRANT_TYPE: authorization_code.exchange,
    refresh_token.GRANT_TYPE: refresh_token.exchange,
    client_credentials.GRANT_TYPE: client_credentials.exchange,
}
# One child of the counter per grant, looked up once rather than by labels() on every request.
ISSUED_BY_GRANT = {grant_type: TOKENS_ISSUED.labels(grant_type) for grant_type in GRANTS}


async def exchange(params: Params, client: Client, context: TokenContext) -> dict[str, Any]:
    grant_type = params.require("grant_type")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise UnsupportedGrantTypeError(f"{grant_type} is not supported")
    if client.public and grant_type in CONFIDENTIAL_ONLY:
        # RFC 6749 §4.4: the client must authenticate; a public client cannot (§5.2).
        raise InvalidClientError(f"{grant_type} needs client authentication")
    if grant_type not in client.grant_types:
        raise UnauthorizedClientError(f"this client may not use {grant_type}")
    issued = await grant(params, client, context)
    ISSUED_BY_GRANT[grant_type].inc()
    return issued
