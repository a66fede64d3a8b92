"""``/oauth2/register`` (RFC 7591) and ``/oauth2/register/{client_id}`` (RFC 7592): read the
JSON body and the Bearer token, call ``idp.oauth.dynamic_clients``, shape the answer."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp.oauth import dynamic_clients
from idp.oauth.dynamic_clients import Registrar
from idp.oauth.dynamic_registration import InvalidClientMetadataError, TooManyRegistrationsError
from idp.oauth.errors import InvalidTokenError, OAuthError
from idp.web.errors import NO_STORE, TOKEN_NO_STORE, bearer_error, oauth_error
from idp.web.forms import BodyError, MediaTypeError, bearer_header, read_json
from idp.web.security import client_ip
from idp.web.state import AppState

MAX_BODY_BYTES = 16_384


async def _json(request: Request[AppState]) -> Any:
    try:
        return await read_json(request, MAX_BODY_BYTES)
    except MediaTypeError:
        raise InvalidClientMetadataError(
            "send the metadata as application/json (RFC 7591 §3.1)"
        ) from None
    except BodyError as error:
        raise InvalidClientMetadataError(str(error)) from None


def _registrar(request: Request[AppState]) -> Registrar:
    return Registrar(request.state["pool"], request.state["settings"])


def _error(error: OAuthError) -> Response:
    if isinstance(error, InvalidTokenError):
        return bearer_error(error)
    response = oauth_error(error)
    if isinstance(error, TooManyRegistrationsError):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _closed(request: Request[AppState]) -> Response | None:
    """IDP_DCR=closed: as if there were no such endpoint."""
    if request.state["settings"].dcr == "closed":
        return JSONResponse({"error": "not_found"}, status_code=404, headers=NO_STORE)
    return None


async def register(request: Request[AppState]) -> Response:
    if closed := _closed(request):
        return closed
    settings = request.state["settings"]
    assert settings.dcr != "closed"
    try:
        body = await _json(request)
        answer = await dynamic_clients.register_client(
            _registrar(request),
            body,
            policy=settings.dcr,
            bearer=bearer_header(request),
            ip=client_ip(request),
            now=request.state["clock"].now(),
        )
    except OAuthError as error:
        return _error(error)
    return JSONResponse(answer, status_code=201, headers=TOKEN_NO_STORE)


async def manage(request: Request[AppState]) -> Response:
    """RFC 7592 §2: GET reads, PUT replaces, DELETE removes, each with the registration access
    token as Bearer."""
    if closed := _closed(request):
        return closed
    client_id: str = request.path_params["client_id"]
    registrar, bearer, now = (
        _registrar(request),
        bearer_header(request),
        request.state["clock"].now(),
    )
    try:
        if request.method == "GET":
            answer = await dynamic_clients.read_client(registrar, client_id, bearer)
        elif request.method == "PUT":
            body = await _json(request)
            answer = await dynamic_clients.update_client(registrar, client_id, bearer, body, now)
        else:
            await dynamic_clients.delete_client(registrar, client_id, bearer, now)
            return Response(status_code=204, headers=NO_STORE)
    except OAuthError as error:
        return _error(error)
    return JSONResponse(answer, headers=TOKEN_NO_STORE)
