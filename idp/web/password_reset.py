"""``/forgot-password`` and ``/reset-password``: ask for a reset link, then set a new password on
the page the link opens (no JavaScript needed). The rules are idp.accounts.reset's.

Both pages are for people who are not signed in: their CSRF tokens are bound to the pre-login
cookie, as /login's are. A link's GET only shows the form; its POST uses the token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.accounts import reset
from idp.accounts.credentials import PasswordRejectedError
from idp.oauth.errors import OAuthError
from idp.web.anonymous import form_csrf_ok, form_page
from idp.web.authorize import resume
from idp.web.detour import carried, rejoin
from idp.web.forms import read_form
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page, render

INVALID_FORM = ("Invalid form", "The form was not sent correctly. Reload the page and try again.")
FORGED = ("This form has expired", "Reload the page and try again.")
LINK_INVALID = (
    "This link no longer works",
    "The link is incomplete, was already used, or has expired. Ask for a new one.",
)
TOO_MANY = (
    "Too many requests",
    "Too many reset links were asked for, from here or for this address. Wait an hour and "
    "try again.",
)
NOT_AN_ADDRESS = "Enter the email address you sign in with."


def forgot_form(
    request: Request[AppState], request_id: str, email: str, error: str | None, status: int = 200
) -> Response:
    page = {"request_id": request_id, "email": email, "error": error}
    return form_page(request, "forgot_password.html", "forgot-password", status, **page)


def reset_form(
    request: Request[AppState],
    token: str | None,
    email: str,
    problems: list[str],
    status: int = 200,
) -> Response:
    page = {"token": token, "email": email, "problems": problems}
    return form_page(request, "reset_password.html", "reset-password", status, **page)


async def show_forgot(request: Request[AppState]) -> Response:
    """The form; a parked authorization request it names (``?request=``, from the sign-in page)
    travels with it, so the reset can lead back to the app."""
    pending = await resume(request, request.query_params.get("request"))
    return forgot_form(request, "" if pending is None else pending.token, "", None)


async def submit_forgot(request: Request[AppState]) -> Response:
    """The same page, at once, whether or not the address has an account: the lookup, the token
    and the mail happen in the background (idp.accounts.reset)."""
    state = request.state
    try:
        form = await read_form(request)
        token, email, csrf = form.get("request"), form.get("email"), form.get("csrf_token")
    except OAuthError:
        return error_page(request, 400, *INVALID_FORM)
    if not form_csrf_ok(request, "forgot-password", csrf):
        return error_page(request, 400, *FORGED)
    pending = await resume(request, token)
    request_id = "" if pending is None else pending.token
    address, now, ip = reset.address(email), state["clock"].now(), client_ip(request)
    if address is None:
        return forgot_form(request, request_id, email or "", NOT_AN_ADDRESS, 400)
    if not await reset.within_limits(state["pool"], address, ip, now):
        return error_page(request, 429, *TOO_MANY)
    sending = reset.send_link(
        state["pool"],
        email=address,
        ip=ip,
        now=now,
        resume=carried(pending),
        mailing=state["mailing"],
    )
    state["background"].start(sending, "password reset link")
    return render(
        request, "reset_requested.html", request_id=request_id, minutes=reset.LINK_MINUTES
    )


async def show_reset(request: Request[AppState]) -> Response:
    """The new-password form; the token stays unused until it is posted (mail scanners GET)."""
    state = request.state
    token = request.query_params.get("token")
    link = await reset.open_link(state["pool"], token, state["clock"].now())
    if link is None:
        return error_page(request, 400, *LINK_INVALID)
    return reset_form(request, token, link.email, [])


async def submit_reset(request: Request[AppState]) -> Response:
    state = request.state
    try:
        form = await read_form(request)
        token, password = form.get("token"), form.get("password") or ""
        csrf = form.get("csrf_token")
    except OAuthError:
        return error_page(request, 400, *INVALID_FORM)
    if not form_csrf_ok(request, "reset-password", csrf):
        return error_page(request, 400, *FORGED)
    now, settings = state["clock"].now(), state["settings"]
    link = await reset.open_link(state["pool"], token, now)
    if link is None:
        return error_page(request, 400, *LINK_INVALID)
    try:
        done = await reset.complete_reset(
            state["pool"],
            state["passwords"],
            link,
            token=token,
            password=password,
            now=now,
            min_length=settings.password_min_length,
            deny_until=settings.deny_until(now),
            ip=client_ip(request),
            mailing=state["mailing"],
        )
    except PasswordRejectedError as rejected:
        return reset_form(request, token, link.email, rejected.problems, 400)
    except reset.ResetLinkError:
        return error_page(request, 400, *LINK_INVALID)
    sign_in = await rejoin(request, done.resume)
    response = render(request, "password_changed.html", sign_in_request=sign_in)
    state["cookies"].clear(response, state["cookies"].session)  # that session has ended
    return response
