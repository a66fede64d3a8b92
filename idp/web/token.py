"""``POST /token`` (RFC 6749 §3.2): parse, authenticate the client, run the grant, shape."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp.db.clients import Client
from idp.oauth import grants
from idp.oauth.client_auth import authenticate, presented_credentials
from idp.oauth.document_clients import TooManyFetchesError
from idp.oauth.errors import InvalidClientError, OAuthError, TooManyRequestsError
from idp.oauth.metadata_document import DocumentError
from idp.oauth.params import Params
from idp.web.cors import allow_origin
from idp.web.errors import TOKEN_NO_STORE, oauth_error
from idp.web.forms import read_form
from idp.web.security import client_ip
from idp.web.state import AppState


async def authenticated(request: Request[AppState]) -> tuple[Params, Client]:
    """The form and the client that authenticated with it (RFC 6749 §2.3), for /token,
    /revoke and /introspect alike."""
    params = await read_form(request)
    presented = presented_credentials(request.headers.get("authorization"), params)
    documents = request.state["client_documents"]

    async def find(client_id: str) -> Client | None:
        """A client_id that is a metadata document's URL is a public client known by it
        (idp.oauth.document_clients); one that cannot be used is ``invalid_client``
        (draft-ietf-oauth-client-id-metadata-document §4.3); one that would take a fetch
        this IP may not cause now is a 429."""
        try:
            return await documents.find(client_id, ip=client_ip(request))
        except DocumentError as error:
            raise InvalidClientError(str(error)) from None
        except TooManyFetchesError as error:
            raise TooManyRequestsError(str(error), error.retry_after) from None

    return params, await authenticate(presented, find)


async def token(request: Request[AppState]) -> Response:
    """OAuth errors are answered here, with CORS for the client; the database or the keyring
    being away is answered by idp.web.errors."""
    state = request.state
    client = None
    try:
        params, client = await authenticated(request)
        body = await grants.exchange(params, client, state["token_context"])
    except OAuthError as error:
        return allow_origin(oauth_error(error), request, client)
    return allow_origin(JSONResponse(body, headers=TOKEN_NO_STORE), request, client)
