"""``POST /token`` (RFC 6749 §3.2): parse, authenticate the client, run the grant, shape."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp.db.clients import Client
from idp.keys.keyring import KeyringStaleError
from idp.oauth import grants
from idp.oauth.client_auth import authenticate, presented_credentials
from idp.oauth.errors import InvalidClientError, OAuthError
from idp.oauth.params import Params
from idp.web.cors import allow_origin
from idp.web.errors import json_error
from idp.web.forms import read_form
from idp.web.state import AppState

# RFC 6749 §5.1: token responses must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(error: OAuthError) -> Response:
    headers = dict(NO_STORE)
    if isinstance(error, InvalidClientError):
        headers["WWW-Authenticate"] = 'Basic realm="idp", charset="UTF-8"'  # RFC 6749 §5.2
    return JSONResponse(error.body(), status_code=error.status_code, headers=headers)


async def authenticated(request: Request[AppState]) -> tuple[Params, Client]:
    """The form and the client that authenticated with it (RFC 6749 §2.3), for /token,
    /revoke and /introspect alike."""
    params = await read_form(request)
    presented = presented_credentials(request.headers.get("authorization"), params)
    return params, await authenticate(presented, request.state["clients"].find)


async def token(request: Request[AppState]) -> Response:
    state = request.state
    client = None
    try:
        params, client = await authenticated(request)
        body = await grants.exchange(params, client, state["token_context"])
    except OAuthError as error:
        return allow_origin(oauth_error(error), request, client)
    except KeyringStaleError:
        return json_error(
            503,
            "temporarily_unavailable",
            "signing keys could not be refreshed; try again shortly",
            {"Retry-After": "5", **NO_STORE},
        )
    return allow_origin(JSONResponse(body, headers=NO_STORE), request, client)
