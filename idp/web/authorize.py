"""``GET /authorize``: check the request, then sign-in, consent, or straight back with a code."""

from __future__ import annotations

import secrets
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from idp.db import authorization_requests, consents, sessions, users
from idp.hashing import digest
from idp.oauth.authorize import (
    AuthorizationRequest,
    AuthorizePageError,
    AuthorizeRedirectError,
    check_request,
)
from idp.oauth.code_flow import (
    SignedIn,
    issue_code,
    needs_consent,
    needs_login,
    redirect_to_client,
)
from idp.oauth.errors import OAuthError
from idp.web.forms import read_query
from idp.web.security import HTML_HEADERS
from idp.web.state import AppState
from idp.web.templates import error_page

# How long a user may take to sign in and consent before the request must start over.
PENDING_TTL = timedelta(minutes=10)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=HTML_HEADERS)


async def signed_in(request: Request[AppState]) -> SignedIn | None:
    """The live session of the browser, if its user may still sign in."""
    state = request.state
    cookie = request.cookies.get(state["cookies"].session)
    if not cookie:
        return None
    session = await sessions.live(state["pool"], digest(cookie), state["clock"].now())
    if session is None:
        return None
    user = await users.by_id(state["pool"], session.user_id)
    if user is None or user.disabled:
        return None
    return SignedIn(user_id=user.id, sid=session.sid, auth_time=session.auth_time)


async def park(request: Request[AppState], auth: AuthorizationRequest, page: str) -> Response:
    """Keep the checked request server-side while the user signs in or consents."""
    assert auth.client is not None
    state = request.state
    token = secrets.token_urlsafe(32)
    now = state["clock"].now()
    await authorization_requests.insert(
        state["pool"],
        id_hash=digest(token),
        client_id=auth.client.client_id,
        params=auth.to_json(),
        now=now,
        expires_at=now + PENDING_TTL,
    )
    return redirect(f"/{page}?request={token}")


async def resume(request: Request[AppState], token: str | None) -> AuthorizationRequest | None:
    """The parked request named by ``token``, if it is still there."""
    if not token:
        return None
    state = request.state
    found = await authorization_requests.live(state["pool"], digest(token), state["clock"].now())
    if found is None:
        return None
    client_id, params = found
    client = await state["clients"].find(client_id)
    if client is None or client.disabled:
        return None
    return AuthorizationRequest.from_json(params, client)


def error_redirect(auth: AuthorizationRequest, issuer: str, error: str, text: str) -> Response:
    return redirect(redirect_to_client(auth, issuer, error=error, error_description=text))


async def proceed(
    request: Request[AppState],
    auth: AuthorizationRequest,
    who: SignedIn | None,
    *,
    fresh: bool = False,
    parked: str | None = None,
) -> Response:
    """Sign-in if needed, then consent if needed, then the code. ``fresh``: the user signed in
    for this very request (prompt=login and max_age are satisfied)."""
    assert auth.client is not None
    state = request.state
    issuer = state["settings"].issuer
    now = state["clock"].now()
    if needs_login(auth, who, now, fresh=fresh):
        if auth.prompt == "none":
            return error_redirect(auth, issuer, "login_required", "the user must sign in")
        return await park(request, auth, "login")
    assert who is not None
    granted = await consents.granted(state["pool"], who.user_id, auth.client.client_id)
    if needs_consent(auth, granted):
        if auth.prompt == "none":
            return error_redirect(auth, issuer, "consent_required", "the user must consent")
        return await park(request, auth, "consent")
    async with state["pool"].acquire() as connection, connection.transaction():
        code = await issue_code(connection, auth, who, now=now, ttl=state["settings"].auth_code_ttl)
        if parked is not None:
            await authorization_requests.delete(connection, digest(parked))
    return redirect(redirect_to_client(auth, issuer, code=code))


async def authorize(request: Request[AppState]) -> Response:
    state = request.state
    try:
        params = read_query(request)
    except OAuthError:
        return error_page(400, "Invalid request", "The request has too many parameters.")
    try:
        auth = await check_request(params, state["clients"].find, state["settings"].issuer)
    except AuthorizePageError as error:
        return error_page(400, error.title, error.detail)
    except AuthorizeRedirectError as error:
        text = error.description or error.error
        return error_redirect(error.request, state["settings"].issuer, error.error, text)
    return await proceed(request, auth, await signed_in(request))
