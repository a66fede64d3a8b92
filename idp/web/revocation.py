"""``POST /revoke`` (RFC 7009) and ``POST /introspect`` (RFC 7662): client-authenticated."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp.oauth.errors import InvalidClientError, OAuthError
from idp.oauth.introspection import introspect
from idp.oauth.revocation import revoke
from idp.web.cors import allow_origin
from idp.web.errors import TOKEN_NO_STORE, oauth_error
from idp.web.state import AppState
from idp.web.token import authenticated


async def revoke_endpoint(request: Request[AppState]) -> Response:
    state = request.state
    client = None
    try:
        params, client = await authenticated(request)
        await revoke(params, client, state["token_context"])
    except OAuthError as error:
        return allow_origin(oauth_error(error), request, client)
    return allow_origin(Response(status_code=200, headers=TOKEN_NO_STORE), request, client)


async def introspect_endpoint(request: Request[AppState]) -> Response:
    state = request.state
    try:
        params, client = await authenticated(request)
        if client.public:  # RFC 7662 §2.1: the caller must be authorized; a public client is not
            raise InvalidClientError("introspection needs client authentication")
        body = await introspect(params, client, state["token_context"])
    except OAuthError as error:
        return oauth_error(error)
    return JSONResponse(body, headers=TOKEN_NO_STORE)
