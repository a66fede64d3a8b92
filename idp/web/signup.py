"""``/signup``: the sign-up page (idp.accounts.signup). With ``IDP_REGISTRATION=closed`` it is
the 404 of any unknown address, and no page links to it."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from idp.accounts import signup
from idp.accounts.signup import SignUpForm
from idp.oauth.errors import OAuthError
from idp.web.anonymous import form_csrf_ok, form_page
from idp.web.authorize import Pending, resume
from idp.web.detour import carried
from idp.web.forms import read_form
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page
from idp.web.verify_email import check_mail_page

FORGED = ("This form has expired", "Reload the page and try again.")
TOO_MANY = "Too many sign-ups from here or for this address. Wait an hour and try again."
# The address is not repeated: the page must be the same for every address (no enumeration).
SENT = "We sent a mail to the address you entered. Open its link to finish creating your account."


def open_or_404(request: Request[AppState]) -> None:
    if request.state["settings"].registration != "open":
        raise HTTPException(404)


def signup_page(
    request: Request[AppState],
    pending: Pending | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    page = {"email": "", "entered_name": "", "error": None, "problems": {}, **context}
    return form_page(
        request,
        "signup.html",
        "signup",
        status_code,
        client_name=pending.auth.client.name if pending and pending.auth.client else None,
        request_id=pending.token if pending else None,
        min_length=request.state["settings"].password_min_length,
        **page,
    )


async def show_signup(request: Request[AppState]) -> Response:
    """A request that is gone or unknown is simply not continued: signing up still works."""
    open_or_404(request)
    return signup_page(request, await resume(request, request.query_params.get("request")))


async def submit_signup(request: Request[AppState]) -> Response:
    open_or_404(request)
    state = request.state
    try:
        form = await read_form(request)
        email, name, password = (form.get(key) or "" for key in ("email", "name", "password"))
        token, csrf = form.get("request"), form.get("csrf_token")
    except OAuthError:
        return error_page(request, 400, "Invalid form", "The sign-up form was not sent correctly.")
    if not form_csrf_ok(request, "signup", csrf):
        return error_page(request, 400, *FORGED)
    pending = await resume(request, token)
    entered = SignUpForm(email, name, password, client_ip(request), carried(pending))
    page = {"email": entered.email, "entered_name": entered.name}
    try:
        await signup.sign_up(
            state["pool"],
            state["passwords"],
            state["mailing"],
            state["settings"],
            entered,
            state["clock"].now(),
        )
    except signup.SignUpInvalidError as invalid:
        return signup_page(request, pending, status_code=400, problems=invalid.problems, **page)
    except signup.TooManyAttemptsError:
        return signup_page(request, pending, status_code=429, error=TOO_MANY, **page)
    except signup.RegistrationClosedError:
        raise HTTPException(404) from None
    # The same page whether the address was new or known (no enumeration).
    return check_mail_page(request, SENT, entered.email.strip())
