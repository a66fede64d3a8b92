"""``POST /login/passkey``: "Sign in with a passkey" (or the email field's passkey autofill) on
``/login`` and ``/account/sign-in``: no email, no password. The form carries the login page's
CSRF token, the signed options it was shown with and the browser's assertion; the rules are
idp.mfa.passkeys'. A passkey with user verification is two factors, so no second step follows,
and the session's amr (RFC 8176) says which: "hwk" or "swk", "user", "mfa"."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.audit_trail import audited
from idp.db import users
from idp.db.users import User
from idp.mfa.passkeys import SIGN_IN, PasskeyAnswer, PasskeyError, Verified
from idp.oauth.errors import OAuthError
from idp.web.account_signin import ACCOUNT, FOR_WHAT
from idp.web.account_signin import SIGN_IN as ACCOUNT_SIGN_IN
from idp.web.anonymous import form_csrf_ok
from idp.web.authorize import Pending, redirect, resume
from idp.web.forms import read_form
from idp.web.login import (
    EXPIRED,
    FORGED,
    complete_sign_in,
    login_page,
    new_session,
    signed_in_cookies,
)
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page
from idp.web.verify_email import unverified_page

NO_PASSKEYS = ("Passkeys are not available", "This server offers no passkeys.")


async def submit_passkey_login(request: Request[AppState]) -> Response:
    state = request.state
    try:
        form = await read_form(request)
        token, csrf = form.get("request") or "", form.get("csrf_token")
        answer = PasskeyAnswer(form.get("challenge") or "", form.get("credential") or "")
    except OAuthError:
        return error_page(request, 400, "Invalid form", "The sign-in form was not sent correctly.")
    if not form_csrf_ok(request, "login", csrf):
        return error_page(request, 400, *FORGED)
    keys = state["passkeys"]
    if keys is None:
        return error_page(request, 404, *NO_PASSKEYS)
    pending = await resume(request, token) if token else None
    if token and pending is None:
        return error_page(request, 400, *EXPIRED)
    now = state["clock"].now()
    try:
        verified = await keys.verify_assertion(state["pool"], SIGN_IN, answer, now)
        user = await users.by_id(state["pool"], verified.user_id)
        if user is None or user.disabled:
            raise PasskeyError("This account cannot sign in.")
    except PasskeyError as refused:
        await _audit(request, "login.failed", None, refused.message)
        return _page_again(request, pending, refused.message)
    if user.must_verify_email:
        return unverified_page(request, user, pending)
    await _audit(request, "login.succeeded", user, None, verified)
    if pending is not None:
        return await complete_sign_in(request, pending, user, now, verified.amr)
    session = await new_session(request, user, now, verified.amr)
    response = redirect(ACCOUNT)
    signed_in_cookies(request, response, session, now)
    return response


def _page_again(request: Request[AppState], pending: Pending | None, error: str) -> Response:
    """The sign-in page it came from, saying why the passkey was refused."""
    if pending is None:
        page = {"client_name": FOR_WHAT, "request_id": "", "action": ACCOUNT_SIGN_IN}
    else:
        assert pending.auth.client is not None
        page = {"client_name": pending.auth.client.name, "request_id": pending.token}
    return login_page(request, **page, error=error, status_code=401)


async def _audit(
    request: Request[AppState],
    action: str,
    user: User | None,
    reason: str | None,
    verified: Verified | None = None,
) -> None:
    """Like a password sign-in's rows, with the method (and never the assertion)."""
    state = request.state
    details = {"ip": client_ip(request), "method": "passkey"}
    if verified is not None:
        details["passkey"] = verified.passkey.name
    async with state["pool"].acquire() as connection, audited(connection) as trail:
        await trail.record(
            now=state["clock"].now(),
            actor="anonymous" if user is None else f"user:{user.id}",
            action=action,
            subject=None if user is None else str(user.id),
            reason=reason,
            details=details,
        )
