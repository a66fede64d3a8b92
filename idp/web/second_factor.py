"""``/login/second-factor``: the code from the authenticator app, or a recovery code, after the
password of a user who has a second factor (idp.mfa.challenge). It serves ``/login`` and
``/account/sign-in`` alike: the pending state says which request, if any, the sign-in is for.
It also serves the step-up of ``acr_values`` (idp.web.authorize.ask_step_up): the pending state
then names the browser's signed-in session, which the code upgrades in place (its row's amr and
mfa_at, RFC 8176; auth_time stays that of its sign-in) rather than a new session."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response

from idp.audit_trail import audited
from idp.db import sessions, users
from idp.db.users import User
from idp.mfa.challenge import Attempt, Factors, PendingSignIn, SecondFactorFailedError, verify
from idp.oauth.code_flow import SignedIn
from idp.oauth.errors import OAuthError
from idp.signin import SignInLockedError
from idp.web.account_signin import ACCOUNT
from idp.web.authorize import Pending, proceed, redirect, resume, signed_in
from idp.web.forms import read_form
from idp.web.login import FORGED, complete_sign_in, new_session, signed_in_cookies, wait_text
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page, render

PURPOSE = "second-factor"
WRONG_CODE = "That code is not valid. Enter a new code from your app, or a recovery code."
EXPIRED = ("This sign-in has expired", "It took too long or was already completed. Sign in again.")


def _form(
    request: Request[AppState], value: str, *, error: str | None = None, status_code: int = 200
) -> Response:
    """The form, its CSRF token bound to the pending state itself."""
    csrf_token = request.state["cookies"].csrf_token(PURPOSE, value)
    return render(request, "second_factor.html", status_code, csrf_token=csrf_token, error=error)


def _expired(request: Request[AppState]) -> Response:
    response = error_page(request, 400, *EXPIRED)
    cookies = request.state["cookies"]
    cookies.clear(response, cookies.second_factor)
    return response


async def show_second_factor(request: Request[AppState]) -> Response:
    cookies = request.state["cookies"]
    value = request.cookies.get(cookies.second_factor)
    if cookies.pending_sign_ins.read(value, request.state["clock"].now()) is None:
        return _expired(request)
    assert value is not None
    return _form(request, value)


async def submit_second_factor(request: Request[AppState]) -> Response:
    state, cookies = request.state, request.state["cookies"]
    value = request.cookies.get(cookies.second_factor)
    try:
        form = await read_form(request)
        code, csrf = form.get("code") or "", form.get("csrf_token")
    except OAuthError:
        return error_page(request, 400, "Invalid form", "The form was not sent correctly.")
    if not cookies.csrf_ok(PURPOSE, value, csrf):
        return error_page(request, 400, *FORGED)
    now = state["clock"].now()
    found = cookies.pending_sign_ins.read(value, now)
    user = None if found is None else await users.by_id(state["pool"], found.user_id)
    if found is None or user is None or user.disabled:
        return _expired(request)
    assert value is not None
    pending = await resume(request, found.request) if found.request else None
    if found.request and pending is None:
        return _expired(request)
    who = await signed_in(request) if found.sid else None
    if found.sid and (pending is None or who is None or who.sid != found.sid):
        return _expired(request)  # a step-up for a session this browser no longer holds
    try:
        amr = await _verify(request, user, found, code)
    except SignInLockedError as locked:
        return _form(request, value, error=wait_text(locked.until, now), status_code=429)
    except SecondFactorFailedError:
        return _form(request, value, error=WRONG_CODE, status_code=401)
    if who is not None:
        assert pending is not None
        response: Response = await _step_up(request, pending, who, amr)
    elif pending is None:  # the account page's own sign-in
        session = await new_session(request, user, now, amr)
        response = redirect(ACCOUNT)
        signed_in_cookies(request, response, session, now)
    else:
        response = await complete_sign_in(request, pending, user, now, amr)
    cookies.clear(response, cookies.second_factor)
    return response


async def _step_up(
    request: Request[AppState], pending: Pending, who: SignedIn, amr: tuple[str, ...]
) -> Response:
    """The session ``who`` upgraded to ``amr`` (audited), then the request goes on (consent or
    the code) with it."""
    state = request.state
    now = state["clock"].now()
    async with state["pool"].acquire() as connection, audited(connection) as trail:
        upgraded = await sessions.step_up(connection, who.sid, who.user_id, amr, now)
        if upgraded is not None:
            await trail.record(
                now=now, actor=f"user:{who.user_id}", action="session.stepped_up",
                subject=str(who.user_id), details={"ip": client_ip(request)},
            )  # fmt: skip
    if upgraded is None:
        return _expired(request)
    return await proceed(request, pending.auth, replace(who, amr=upgraded.amr), pending=pending)


async def _verify(
    request: Request[AppState], user: User, found: PendingSignIn, code: str
) -> tuple[str, ...]:
    state, cookies = request.state, request.state["cookies"]
    key = state["settings"].key_encryption_key
    assert key is not None
    attempt = Attempt(client_ip(request), request.cookies.get(cookies.device), cookies.devices)
    factors = Factors.of(key, state["mailing"])
    return await verify(state["pool"], factors, user, found, code, attempt, state["clock"].now())
