"""``/verify-email``: a verification or email-change link's page (its GET shows a form, only its
POST uses the token: mail scanners follow links), and ``/verify-email/resend``, the "send it
again" of the "check your mail" page (idp.accounts.verification)."""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from idp.accounts import verification
from idp.accounts.mail_tokens import TTL
from idp.db.users import User
from idp.oauth.errors import OAuthError
from idp.web.anonymous import form_csrf_ok, form_page
from idp.web.authorize import Pending, redirect, resume
from idp.web.detour import carried, rejoin
from idp.web.forms import read_form
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page, render

INVALID = (
    "This link cannot be used",
    "The link was already used, has expired, or is not one of ours. Ask for a new mail.",
)
FORGED = ("This form has expired", "Open the link from your mail again.")
BAD_FORM = ("Invalid form", "The form was not sent correctly.")
UNVERIFIED = (
    "Your address {email} is not verified yet. Open the link in the mail we sent you, then sign "
    "in again."
)
RESENT = "We sent a new mail to {email}. Open the link in it to finish creating your account."
TOO_MANY = "Too many mails were asked for. Wait an hour and try again."
# The login page's notice after a verification (idp.web.login).
VERIFIED_NOTICE = "verified"


def resend_purpose(email: str) -> str:
    """The resend form's CSRF purpose names the address (hashed: no separator to play with), so
    only the page a correct password opened can ask for mail to it."""
    return "resend:" + hashlib.sha256(email.strip().casefold().encode()).hexdigest()


def check_mail_page(
    request: Request[AppState],
    lead: str,
    email: str,
    *,
    status_code: int = 200,
    pending: Pending | None = None,
    resend: bool = False,
    error: str | None = None,
) -> Response:
    """ "Check your mail": after a sign-up, a resend, or the sign-in of an unverified account
    (whose page alone offers to send the mail again)."""
    page = {
        "lead": lead.format(email=email),
        "email": email,
        "hours": int(TTL["verify_email"].total_seconds() // 3600),
        "error": error,
        "resend": resend,
        "request_id": pending.token if pending else None,
    }
    if resend:
        return form_page(request, "check_mail.html", resend_purpose(email), status_code, **page)
    return render(request, "check_mail.html", status_code, csrf_token=None, **page)


def unverified_page(request: Request[AppState], user: User, pending: Pending | None) -> Response:
    """What a correct password of an account still to verify gets: no session, a resend."""
    return check_mail_page(
        request, UNVERIFIED, user.email, status_code=403, pending=pending, resend=True
    )


async def show_verify_email(request: Request[AppState]) -> Response:
    state = request.state
    token = request.query_params.get("token")
    found = await verification.peek(state["pool"], token, state["clock"].now())
    if found is None or token is None:
        return error_page(request, 400, *INVALID)
    change = found.purpose == "change_email"
    return form_page(
        request, "verify_email.html", "verify-email", token=token, email=found.email, change=change
    )


async def submit_verify_email(request: Request[AppState]) -> Response:
    state = request.state
    try:
        form = await read_form(request)
        token, csrf = form.get("token"), form.get("csrf_token")
    except OAuthError:
        return error_page(request, 400, *BAD_FORM)
    if not form_csrf_ok(request, "verify-email", csrf):
        return error_page(request, 400, *FORGED)
    mailing = state["mailing"]
    issuer, now = state["settings"].issuer, state["clock"].now()
    try:
        done = await verification.confirm(
            state["pool"], mailing, token, client_ip(request), issuer, now
        )
    except verification.LinkInvalidError:
        return error_page(request, 400, *INVALID)
    except verification.AddressTakenError as taken:
        detail = f"Another account uses {taken.email} now. Ask for the change again."
        return error_page(request, 409, "This address is taken", detail)
    parked = await rejoin(request, done.resume) if done.purpose == "verify_email" else None
    if parked is not None:
        query = {"request": parked, "email": done.user.email, "notice": VERIFIED_NOTICE}
        return redirect(f"/login?{urlencode(query)}")
    changed = done.purpose == "change_email"
    return render(request, "email_verified.html", changed=changed, email=done.user.email)


async def resend_verification(request: Request[AppState]) -> Response:
    """The same answer whether or not a mail went (no enumeration); the CSRF token names the
    address (``resend_purpose``)."""
    state = request.state
    try:
        form = await read_form(request)
        email, token, csrf = form.get("email") or "", form.get("request"), form.get("csrf_token")
    except OAuthError:
        return error_page(request, 400, *BAD_FORM)
    if not form_csrf_ok(request, resend_purpose(email), csrf):
        return error_page(request, 400, *FORGED)
    pending = await resume(request, token)
    try:
        await verification.resend(
            state["pool"],
            state["mailing"],
            email,
            client_ip(request),
            state["clock"].now(),
            resume=carried(pending),
        )
    except verification.TooManyResendsError:
        return check_mail_page(
            request,
            UNVERIFIED,
            email,
            status_code=429,
            pending=pending,
            resend=True,
            error=TOO_MANY,
        )
    return check_mail_page(request, RESENT, email, pending=pending, resend=True)
