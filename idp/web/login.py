"""``/login``: the hosted sign-in page (works without JavaScript)."""

from __future__ import annotations

import secrets
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from idp.db.users import User
from idp.oauth.errors import OAuthError
from idp.signin import SignInFailedError, SignInLockedError, authenticate, start_session
from idp.web.authorize import Pending, proceed, resume
from idp.web.forms import read_form
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page, render

GENERIC_ERROR = "Incorrect email or password."
EXPIRED = ("This sign-in has expired", "The sign-in took too long or was already completed.")
FORGED = ("This form has expired", "Reload the page and sign in again.")


def _wait_text(until: datetime, now: datetime) -> str:
    minutes = max(1, round((until - now).total_seconds() / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed sign-ins. Wait {minutes} {unit} and try again."


def login_page(
    request: Request[AppState],
    *,
    client_name: str,
    request_id: str,
    email: str = "",
    error: str | None = None,
    status_code: int = 200,
    action: str = "/login",
) -> Response:
    """The form, with a CSRF token bound to a pre-login cookie (set here if missing); it posts
    to ``action`` (the account page's sign-in posts elsewhere, with no request)."""
    cookies = request.state["cookies"]
    binding = request.cookies.get(cookies.login) or secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        status_code,
        client_name=client_name,
        request_id=request_id,
        email=email,
        error=error,
        csrf_token=cookies.csrf_token("login", binding),
        action=action,
    )
    cookies.set(response, cookies.login, binding, max_age=None)
    return response


async def show_login(request: Request[AppState]) -> Response:
    """Open at any step: signing in again is never a shortcut, and a sign-in made here becomes
    the request's own (the consent step then belongs to its session)."""
    pending = await resume(request, request.query_params.get("request"))
    if pending is None:
        return error_page(request, 400, *EXPIRED)
    assert pending.auth.client is not None
    return login_page(request, client_name=pending.auth.client.name, request_id=pending.token)


async def submit_login(request: Request[AppState]) -> Response:
    state = request.state
    cookies = state["cookies"]
    try:
        form = await read_form(request)
        token, email = form.get("request"), form.get("email") or ""
        password, csrf = form.get("password") or "", form.get("csrf_token")
    except OAuthError:
        return error_page(request, 400, "Invalid form", "The sign-in form was not sent correctly.")
    if not cookies.csrf_ok("login", request.cookies.get(cookies.login), csrf):
        return error_page(request, 400, *FORGED)
    pending = await resume(request, token)
    if pending is None:
        return error_page(request, 400, *EXPIRED)
    assert pending.auth.client is not None
    now = state["clock"].now()
    page = {"client_name": pending.auth.client.name, "request_id": pending.token, "email": email}
    try:
        user = await authenticate(
            state["pool"],
            state["passwords"],
            email=email,
            password=password,
            ip=client_ip(request),
            now=now,
            device_cookie=request.cookies.get(cookies.device),
            devices=cookies.devices,
        )
    except SignInLockedError as locked:
        return login_page(request, **page, error=_wait_text(locked.until, now), status_code=429)
    except SignInFailedError:
        return login_page(request, **page, error=GENERIC_ERROR, status_code=401)
    return await complete_sign_in(request, pending, user, now)


async def complete_sign_in(
    request: Request[AppState], pending: Pending, user: User, now: datetime
) -> Response:
    """A new session, and a new device cookie for the browser (idp.devices); the login step of
    the request is done, by this session, which ``proceed`` records."""
    state, cookies = request.state, request.state["cookies"]
    session = await start_session(
        state["pool"],
        user,
        now=now,
        ttl=state["settings"].session_ttl,
        user_agent=request.headers.get("user-agent"),
        ip=client_ip(request),
    )
    done = pending.after_sign_in(session.sid)
    response = await proceed(request, pending.auth, session.signed_in(), pending=done)
    cookies.set_session(response, session.cookie)
    cookies.set_device(response, cookies.devices.issue(user, now))
    cookies.clear(response, cookies.login)
    return response
