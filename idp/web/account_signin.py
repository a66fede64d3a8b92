"""``/account/sign-in``: the sign-in page for the account page itself, with no authorization
request behind it. The same form as ``/login`` (its template, its CSRF binding, the same
``authenticate`` and so the same brute-force protection), posting here; it always goes back to
``/account``, never to a URL the request names (no open redirect).

With IDP_MFA=required, a user who signed in here with a password only has no second factor (a
user with one was asked for it): they land on ``/account/security`` (``MFA_REQUIRED``), where
the authenticator app is set up. The account page stays theirs meanwhile (it is where the factor
is set up, and where a lost one is dealt with); every authorization request still requires the
second factor (idp.web.authorize.step_up_to)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.web.authorize import redirect, signed_in
from idp.web.login import check_password, login_page, new_session, read_sign_in, signed_in_cookies
from idp.web.state import AppState

ACCOUNT = "/account"
SIGN_IN = "/account/sign-in"
FOR_WHAT = "your account"
MFA_REQUIRED = "/account/security?done=mfa-required"


async def show_account_sign_in(request: Request[AppState]) -> Response:
    if await signed_in(request) is not None:
        return redirect(ACCOUNT)
    return login_page(request, client_name=FOR_WHAT, request_id="", action=SIGN_IN)


async def submit_account_sign_in(request: Request[AppState]) -> Response:
    posted = await read_sign_in(request)
    if isinstance(posted, Response):
        return posted
    now = request.state["clock"].now()
    page = {"client_name": FOR_WHAT, "request_id": "", "email": posted.email, "action": SIGN_IN}
    user = await check_password(request, posted, now, page=page, pending=None)
    if isinstance(user, Response):
        return user
    session = await new_session(request, user, now)
    required = request.state["settings"].mfa == "required"
    response = redirect(MFA_REQUIRED if required else ACCOUNT)
    signed_in_cookies(request, response, session, now)
    return response
