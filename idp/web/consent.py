"""``/consent``: a user allows (or denies) a client that is not first-party."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.db import audit, consents, users
from idp.oauth.code_flow import scope_texts
from idp.oauth.errors import OAuthError
from idp.web.authorize import error_redirect, proceed, resume, signed_in
from idp.web.forms import read_form
from idp.web.state import AppState
from idp.web.templates import error_page, render

EXPIRED = ("This request has expired", "The request took too long or was already completed.")


async def show_consent(request: Request[AppState]) -> Response:
    token = request.query_params.get("request")
    auth = await resume(request, token)
    who = await signed_in(request)
    if auth is None or token is None or who is None:
        return error_page(400, *EXPIRED)
    assert auth.client is not None
    user = await users.by_id(request.state["pool"], who.user_id)
    assert user is not None
    cookies = request.state["cookies"]
    return render(
        "consent.html",
        client_name=auth.client.name,
        email=user.email,
        scope_texts=scope_texts(auth.scopes),
        request_id=token,
        csrf_token=cookies.csrf_token("consent", request.cookies.get(cookies.session, "")),
    )


async def submit_consent(request: Request[AppState]) -> Response:
    state = request.state
    cookies = state["cookies"]
    try:
        form = await read_form(request)
        token, decision, csrf = form.get("request"), form.get("decision"), form.get("csrf_token")
    except OAuthError:
        return error_page(400, "Invalid form", "The form was not sent correctly.")
    if not cookies.csrf_ok("consent", request.cookies.get(cookies.session), csrf):
        return error_page(400, "This form has expired", "Reload the page and try again.")
    auth = await resume(request, token)
    who = await signed_in(request)
    if auth is None or who is None:
        return error_page(400, *EXPIRED)
    assert auth.client is not None
    allowed, now = decision == "allow", state["clock"].now()
    async with state["pool"].acquire() as connection, connection.transaction():
        if allowed:
            await consents.grant(connection, who.user_id, auth.client.client_id, auth.scopes, now)
        await audit.record(
            connection,
            now=now,
            actor=f"user:{who.user_id}",
            action="consent.granted" if allowed else "consent.denied",
            subject=str(who.user_id),
            details={"client_id": auth.client.client_id, "scopes": auth.scopes},
        )
    if not allowed:
        return error_redirect(auth, state["settings"].issuer, "access_denied", "the user denied")
    return await proceed(request, auth, who, fresh=True, parked=token)
