"""``/account/sign-in``: the sign-in page for the account page itself, with no authorization
request behind it. The same form as ``/login`` (its template, its CSRF binding, the same
``authenticate`` and so the same brute-force protection), posting here; it always goes back to
``/account``, never to a URL the request names (no open redirect)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.oauth.errors import OAuthError
from idp.signin import SignInFailedError, SignInLockedError, authenticate, start_session
from idp.web.authorize import redirect, signed_in
from idp.web.forms import read_form
from idp.web.login import FORGED, GENERIC_ERROR, _wait_text, login_page
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page

ACCOUNT = "/account"
SIGN_IN = "/account/sign-in"
FOR_WHAT = "your account"


async def show_account_sign_in(request: Request[AppState]) -> Response:
    if await signed_in(request) is not None:
        return redirect(ACCOUNT)
    return login_page(request, client_name=FOR_WHAT, request_id="", action=SIGN_IN)


async def submit_account_sign_in(request: Request[AppState]) -> Response:
    state = request.state
    cookies = state["cookies"]
    try:
        form = await read_form(request)
        email, password = form.get("email") or "", form.get("password") or ""
        csrf = form.get("csrf_token")
    except OAuthError:
        return error_page(request, 400, "Invalid form", "The sign-in form was not sent correctly.")
    if not cookies.csrf_ok("login", request.cookies.get(cookies.login), csrf):
        return error_page(request, 400, *FORGED)
    now, ip = state["clock"].now(), client_ip(request)
    page = {"client_name": FOR_WHAT, "request_id": "", "email": email, "action": SIGN_IN}
    try:
        user = await authenticate(
            state["pool"],
            state["passwords"],
            email=email,
            password=password,
            ip=ip,
            now=now,
            device_cookie=request.cookies.get(cookies.device),
            devices=cookies.devices,
        )
    except SignInLockedError as locked:
        wait = _wait_text(locked.until, now)
        return login_page(request, **page, error=wait, status_code=429)
    except SignInFailedError:
        return login_page(request, **page, error=GENERIC_ERROR, status_code=401)
    user_agent = request.headers.get("user-agent")
    ttl = state["settings"].session_ttl
    session = await start_session(
        state["pool"], user, now=now, ttl=ttl, user_agent=user_agent, ip=ip
    )
    response = redirect(ACCOUNT)
    cookies.set_session(response, session.cookie)
    cookies.set_device(response, cookies.devices.issue(user, now))
    cookies.clear(response, cookies.login)
    return response
