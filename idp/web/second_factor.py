"""``/login/second-factor``: the code from the authenticator app, a recovery code, or one of the
user's passkeys (``POST /login/second-factor/passkey``), after the password of a user who has a
second factor (idp.mfa.challenge). It serves ``/login`` and
``/account/sign-in`` alike: the pending state says which request, if any, the sign-in is for.
It also serves the step-up of ``acr_values`` (idp.web.authorize.ask_step_up): the pending state
then names the browser's signed-in session, which the factor upgrades in place (its row's amr and
mfa_at, RFC 8176; auth_time stays that of its sign-in) rather than a new session."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from idp.db import second_factors, users
from idp.db.users import User
from idp.mfa.challenge import (
    Attempt,
    Factors,
    PendingSignIn,
    SecondFactorFailedError,
    step_up_session,
    verify,
    verify_passkey,
)
from idp.mfa.passkeys import PasskeyAnswer, PasskeyError
from idp.oauth.acr import ACR_PHR
from idp.oauth.code_flow import SignedIn
from idp.oauth.errors import OAuthError
from idp.signin import SignInLockedError
from idp.web.account_signin import ACCOUNT
from idp.web.authorize import Pending, proceed, redirect, resume, signed_in
from idp.web.forms import read_form
from idp.web.login import FORGED, complete_sign_in, new_session, signed_in_cookies, wait_text
from idp.web.passkey_login import NO_PASSKEYS
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page, render

PURPOSE = "second-factor"
WRONG_CODE = "That code is not valid. Enter a new code from your app, or a recovery code."
EXPIRED = ("This sign-in has expired", "It took too long or was already completed. Sign in again.")
PASSKEY_ONLY = "This app asks for a passkey: a code is not enough."


async def _form(
    request: Request[AppState],
    value: str,
    found: PendingSignIn,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    """The page, its CSRF token bound to the pending state itself: the code form if the user has
    an app or recovery codes and the class asked for allows them, the passkey form (with fresh
    options for the user's own passkeys) if they have one."""
    state = request.state
    csrf_token = state["cookies"].csrf_token(PURPOSE, value)
    kinds = await second_factors.factor_kinds(state["pool"], found.user_id)
    keys = state["passkeys"]
    ceremony = None
    if keys is not None and kinds.passkey:
        ceremony = await keys.second_factor(state["pool"], found.user_id, state["clock"].now())
    return render(
        request, "second_factor.html", status_code, csrf_token=csrf_token, error=error,
        codes=kinds.codes and _codes_allowed(found), passkey=ceremony,
    )  # fmt: skip


def _codes_allowed(found: PendingSignIn) -> bool:
    """A step-up to the phishing-resistant class takes a passkey only (idp.oauth.acr)."""
    return found.acr != ACR_PHR


def _expired(request: Request[AppState]) -> Response:
    response = error_page(request, 400, *EXPIRED)
    cookies = request.state["cookies"]
    cookies.clear(response, cookies.second_factor)
    return response


async def _live(request: Request[AppState], value: str | None) -> tuple[PendingSignIn, User] | None:
    """The pending state ``value`` holds and its user, if it is genuine, not too old, and its
    user may still finish it: not disabled, the password the same as when it was issued (a
    password changed meanwhile ends it: idp.mfa.challenge)."""
    state = request.state
    issued = state["cookies"].pending_sign_ins
    found = issued.read(value, state["clock"].now())
    user = None if found is None else await users.by_id(state["pool"], found.user_id)
    if found is None or user is None or not issued.current(found, user):
        return None
    return found, user


async def show_second_factor(request: Request[AppState]) -> Response:
    cookies = request.state["cookies"]
    value = request.cookies.get(cookies.second_factor)
    live = await _live(request, value)
    if live is None:
        return _expired(request)
    assert value is not None
    return await _form(request, value, live[0])


@dataclass(frozen=True)
class Step:
    """A posted second factor's context: the pending state (its cookie value and what it says),
    its user, the parked request (None for the account page's sign-in) and, for a step-up, the
    signed-in session to upgrade."""

    value: str
    found: PendingSignIn
    user: User
    pending: Pending | None
    who: SignedIn | None


async def _posted(
    request: Request[AppState], *names: str
) -> tuple[Step, dict[str, str]] | Response:
    """The form's ``names`` and the step they complete, or the page refusing them."""
    cookies = request.state["cookies"]
    value = request.cookies.get(cookies.second_factor)
    try:
        form = await read_form(request)
        fields = {name: form.get(name) or "" for name in names}
        csrf = form.get("csrf_token")
    except OAuthError:
        return error_page(request, 400, "Invalid form", "The form was not sent correctly.")
    if not cookies.csrf_ok(PURPOSE, value, csrf):
        return error_page(request, 400, *FORGED)
    live = await _live(request, value)
    if live is None:
        return _expired(request)
    assert value is not None
    found, user = live
    pending = await resume(request, found.request) if found.request else None
    if found.request and pending is None:
        return _expired(request)
    who = await signed_in(request) if found.sid else None
    if found.sid and (pending is None or who is None or who.sid != found.sid):
        return _expired(request)  # a step-up for a session this browser no longer holds
    return Step(value, found, user, pending, who), fields


async def submit_second_factor(request: Request[AppState]) -> Response:
    posted = await _posted(request, "code")
    if isinstance(posted, Response):
        return posted
    step, fields = posted
    now = request.state["clock"].now()
    if not _codes_allowed(step.found):
        return await _form(request, step.value, step.found, error=PASSKEY_ONLY, status_code=400)
    try:
        amr = await _verify(request, step.user, step.found, fields["code"])
    except SignInLockedError as locked:
        error = wait_text(locked.until, now)
        return await _form(request, step.value, step.found, error=error, status_code=429)
    except SecondFactorFailedError:
        return await _form(request, step.value, step.found, error=WRONG_CODE, status_code=401)
    return await _finish(request, step, amr)


async def submit_second_factor_passkey(request: Request[AppState]) -> Response:
    """The second factor as one of the user's passkeys (idp.mfa.passkeys)."""
    posted = await _posted(request, "challenge", "credential")
    if isinstance(posted, Response):
        return posted
    (step, fields), state = posted, request.state
    keys = state["passkeys"]
    if keys is None:
        return error_page(request, 404, *NO_PASSKEYS)
    answer = PasskeyAnswer(fields["challenge"], fields["credential"])
    try:
        amr = await verify_passkey(
            state["pool"], keys, step.user, step.found, answer, _attempt(request),
            state["clock"].now(),
        )  # fmt: skip
    except PasskeyError as refused:
        return await _form(request, step.value, step.found, error=refused.message, status_code=401)
    return await _finish(request, step, amr)


async def _finish(request: Request[AppState], step: Step, amr: tuple[str, ...]) -> Response:
    """The step-up's session upgraded, or the account page's session, or the request's."""
    now = request.state["clock"].now()
    if step.who is not None:
        assert step.pending is not None
        response: Response = await _step_up(request, step.pending, step.who, amr)
    elif step.pending is None:  # the account page's own sign-in
        session = await new_session(request, step.user, now, amr)
        response = redirect(ACCOUNT)
        signed_in_cookies(request, response, session, now)
    else:
        response = await complete_sign_in(request, step.pending, step.user, now, amr)
    cookies = request.state["cookies"]
    cookies.clear(response, cookies.second_factor)
    return response


async def _step_up(
    request: Request[AppState], pending: Pending, who: SignedIn, amr: tuple[str, ...]
) -> Response:
    """The session ``who`` upgraded to ``amr`` (audited), then the request goes on (consent or
    the code) with it."""
    state = request.state
    now = state["clock"].now()
    upgraded = await step_up_session(state["pool"], who, amr, client_ip(request), now)
    if upgraded is None:
        return _expired(request)
    return await proceed(request, pending.auth, upgraded, pending=pending)


def _attempt(request: Request[AppState]) -> Attempt:
    cookies = request.state["cookies"]
    return Attempt(client_ip(request), request.cookies.get(cookies.device), cookies.devices)


async def _verify(
    request: Request[AppState], user: User, found: PendingSignIn, code: str
) -> tuple[str, ...]:
    state = request.state
    key = state["settings"].key_encryption_key
    assert key is not None
    factors = Factors.of(key, state["mailing"])
    now = state["clock"].now()
    return await verify(state["pool"], factors, user, found, code, _attempt(request), now)
