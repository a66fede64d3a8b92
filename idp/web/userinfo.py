"""``GET|POST /userinfo`` (OIDC Core §5.3) with Bearer tokens (RFC 6750)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp.oauth.access_token import verify_access_token
from idp.oauth.errors import (
    InsufficientScopeError,
    InvalidRequestError,
    InvalidTokenError,
    OAuthError,
)
from idp.oauth.id_token import scope_claims
from idp.web.cors import allow_origin
from idp.web.errors import NO_STORE, bearer_error
from idp.web.forms import FORM, read_form
from idp.web.state import AppState


async def bearer_token(request: Request[AppState]) -> str | None:
    """RFC 6750 §2.1 header, or §2.2 form body (POST); never both, never the query string."""
    header = request.headers.get("authorization")
    from_header = None
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return None  # RFC 6750 §3.1: another scheme is as if no token was sent
        if not value.strip():
            raise InvalidTokenError("the Bearer token is empty")
        from_header = value.strip()
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and content_type.partition(";")[0].strip().lower() == FORM:
        from_body = (await read_form(request)).get("access_token")
        if from_body is not None:
            if from_header is not None:
                raise InvalidRequestError("send the token once")  # RFC 6750 §3.1
            return from_body
    return from_header


def _user_id(claims: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(claims["sub"])
    except ValueError:
        raise InvalidTokenError("the token names no user") from None


async def userinfo(request: Request[AppState]) -> Response:
    """Every error is a Bearer challenge (RFC 6750 §3), with CORS for the token's client."""
    state = request.state
    settings = state["settings"]
    try:
        token = await bearer_token(request)
        if token is None:
            return bearer_error(None)
        claims = verify_access_token(
            token,
            state["keyring"].snapshot.verification_keys,
            issuer=settings.issuer,
            now=state["clock"].now(),
            skew=settings.clock_skew,
            audience=settings.issuer,  # OIDC Core §5.3: the token must be meant for userinfo
        )
        context = state["token_context"]
        if await context.deny_list.revoked(claims["jti"]):
            raise InvalidTokenError("the access token was revoked")
        user = await context.users.find(_user_id(claims))
        if user is None or user.disabled:
            raise InvalidTokenError("the user can no longer sign in")
    except OAuthError as error:
        return bearer_error(error)
    client = await state["clients"].find(str(claims.get("client_id", "")))
    scopes = str(claims.get("scope", "")).split()
    if "openid" not in scopes:
        response = bearer_error(InsufficientScopeError("the token lacks the openid scope"))
    else:
        body = {"sub": str(user.id), **scope_claims(user, scopes)}
        response = JSONResponse(body, headers=NO_STORE)
    return allow_origin(response, request, client)
