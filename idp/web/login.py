"""``/login``: the hosted sign-in page (works without JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from idp.db.authorization_codes import PASSWORD_ONLY
from idp.db.users import User
from idp.oauth.authorize import AuthorizeRedirectError
from idp.oauth.errors import OAuthError
from idp.signin import (
    EmailNotVerifiedError,
    NewSession,
    SecondFactorRequiredError,
    SignInFailedError,
    SignInLockedError,
    authenticate,
    start_session,
)
from idp.web.anonymous import form_csrf_ok, form_page
from idp.web.authorize import SECOND_FACTOR, Pending, proceed, redirect, resume
from idp.web.errors import authorize_redirect
from idp.web.forms import read_form
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page
from idp.web.verify_email import VERIFIED_NOTICE, unverified_page

GENERIC_ERROR = "Incorrect email or password."
EXPIRED = ("This sign-in has expired", "The sign-in took too long or was already completed.")
FORGED = ("This form has expired", "Reload the page and sign in again.")
# The notices other pages may send here with (a fixed text each: nothing from the URL is shown).
NOTICES = {VERIFIED_NOTICE: "Your address is verified. Sign in to continue."}
MAX_EMAIL_PREFILL = 320


def wait_text(until: datetime, now: datetime) -> str:
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
    notice: str | None = None,
    status_code: int = 200,
    action: str = "/login",
) -> Response:
    """The form; it posts to ``action`` (the account page's sign-in posts elsewhere, with no
    request). Where passkeys work, the page also carries the options of a passwordless sign-in
    (idp.mfa.passkeys: signed, nothing stored) for "Sign in with a passkey" and the autofill."""
    state = request.state
    keys = state["passkeys"]
    return form_page(
        request,
        "login.html",
        "login",
        status_code,
        client_name=client_name,
        request_id=request_id,
        email=email,
        error=error,
        notice=notice,
        signup_open=state["settings"].registration == "open",
        action=action,
        passkey=None if keys is None else keys.sign_in(state["clock"].now()),
    )


async def show_login(request: Request[AppState]) -> Response:
    """Open at any step: signing in again is never a shortcut, and a sign-in made here becomes
    the request's own (the consent step then belongs to its session)."""
    pending = await resume(request, request.query_params.get("request"))
    if pending is None:
        return error_page(request, 400, *EXPIRED)
    assert pending.auth.client is not None
    query = request.query_params
    email = query.get("email", "")[:MAX_EMAIL_PREFILL]
    notice = NOTICES.get(query.get("notice", ""))
    return login_page(
        request,
        client_name=pending.auth.client.name,
        request_id=pending.token,
        email=email,
        notice=notice,
    )


@dataclass(frozen=True)
class SignInForm:
    request: str | None  # the parked request's token (none on the account page's sign-in)
    email: str
    password: str


async def read_sign_in(request: Request[AppState]) -> SignInForm | Response:
    """The posted sign-in form, or the page refusing it (unreadable, or a forged CSRF token)."""
    try:
        form = await read_form(request)
        posted = SignInForm(
            form.get("request"), form.get("email") or "", form.get("password") or ""
        )
        csrf = form.get("csrf_token")
    except OAuthError:
        return error_page(request, 400, "Invalid form", "The sign-in form was not sent correctly.")
    if not form_csrf_ok(request, "login", csrf):
        return error_page(request, 400, *FORGED)
    return posted


async def check_password(
    request: Request[AppState],
    posted: SignInForm,
    now: datetime,
    *,
    page: dict[str, str],
    pending: Pending | None,
) -> User | Response:
    """The user the form signs in, or the page saying why not: the login form again (``page``
    its fields) with the lock's wait or the generic error, or "check your mail", or the
    second-factor step for a user who has one."""
    state, cookies = request.state, request.state["cookies"]
    try:
        return await authenticate(
            state["pool"],
            state["passwords"],
            email=posted.email,
            password=posted.password,
            ip=client_ip(request),
            now=now,
            device_cookie=request.cookies.get(cookies.device),
            devices=cookies.devices,
        )
    except SecondFactorRequiredError as required:
        return ask_second_factor(request, required, now, pending)
    except SignInLockedError as locked:
        return login_page(request, **page, error=wait_text(locked.until, now), status_code=429)
    except SignInFailedError:
        return login_page(request, **page, error=GENERIC_ERROR, status_code=401)
    except EmailNotVerifiedError as unverified:
        return unverified_page(request, unverified.user, pending)


async def submit_login(request: Request[AppState]) -> Response:
    posted = await read_sign_in(request)
    if isinstance(posted, Response):
        return posted
    pending = await resume(request, posted.request)
    if pending is None:
        return error_page(request, 400, *EXPIRED)
    assert pending.auth.client is not None
    now = request.state["clock"].now()
    page = {"client_name": pending.auth.client.name, "request_id": pending.token}
    user = await check_password(
        request, posted, now, page=page | {"email": posted.email}, pending=pending
    )
    if isinstance(user, Response):
        return user
    return await complete_sign_in(request, pending, user, now)


def ask_second_factor(
    request: Request[AppState],
    required: SecondFactorRequiredError,
    now: datetime,
    pending: Pending | None,
) -> Response:
    """No session yet: the browser keeps the signed pending state (idp.mfa.challenge), naming
    the user and the request, and goes on to the second-factor page, which /login and
    /account/sign-in share."""
    cookies = request.state["cookies"]
    issuing = cookies.pending_sign_ins
    request_token = "" if pending is None else pending.token
    value = issuing.issue(required.user, required.account, request_token, now)
    response = redirect(SECOND_FACTOR)
    cookies.set(response, cookies.second_factor, value, max_age=int(issuing.ttl.total_seconds()))
    return response


async def new_session(
    request: Request[AppState],
    user: User,
    now: datetime,
    amr: tuple[str, ...] = PASSWORD_ONLY,
) -> NewSession:
    """A new session for ``user``, remembering the browser and address it signed in from, and
    the factors it signed in with (RFC 8176 ``amr``)."""
    state = request.state
    return await start_session(
        state["pool"],
        user,
        now=now,
        ttl=state["settings"].session_ttl,
        user_agent=request.headers.get("user-agent"),
        ip=client_ip(request),
        amr=amr,
    )


def signed_in_cookies(
    request: Request[AppState], response: Response, session: NewSession, now: datetime
) -> None:
    """The session cookie, a new device cookie for the browser (idp.devices), and the pre-login
    cookie gone."""
    cookies = request.state["cookies"]
    cookies.set_session(response, session.cookie)
    cookies.set_device(response, cookies.devices.issue(session.user, now))
    cookies.clear(response, cookies.login)


async def complete_sign_in(
    request: Request[AppState],
    pending: Pending,
    user: User,
    now: datetime,
    amr: tuple[str, ...] = PASSWORD_ONLY,
) -> Response:
    """A new session; the login step of the request is done, by this session, which ``proceed``
    records. The browser holds the session even when the request then ends in an error for the
    client (an unmet requirement, say): the person did sign in."""
    session = await new_session(request, user, now, amr)
    done = pending.after_sign_in(session.sid)
    try:
        response = await proceed(request, pending.auth, session.signed_in(), pending=done)
    except AuthorizeRedirectError as error:
        response = await authorize_redirect(request, error)
    signed_in_cookies(request, response, session, now)
    return response
