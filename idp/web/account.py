"""``/account``: a signed-in person's own page: profile, email, password, sessions and connected
apps. Each section is a form posting to its own path under ``/account``, with a CSRF token bound
to the session cookie; a change answers 303 back to ``/account?done=CODE``, shown as a fixed
line of text (never the input), and a refused one shows the page again with why. The rules are
``idp.accounts``'s; these handlers read the form, check the session and the token, and render."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from idp.accounts import profile
from idp.accounts.account_sessions import end_other_sessions, end_session, list_sessions
from idp.accounts.connected_apps import list_apps, revoke_app
from idp.accounts.profile import ProfileError, Proof
from idp.accounts.services import Services
from idp.db import users
from idp.db.users import User
from idp.oauth.code_flow import SignedIn
from idp.oauth.errors import OAuthError
from idp.web.account_signin import ACCOUNT, SIGN_IN
from idp.web.authorize import redirect, signed_in
from idp.web.forms import read_form
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page, render

INVALID = ("Invalid form", "The form was not sent correctly.")
FORGED = ("This form has expired", "Reload the account page and try again.")
# What ``?done=CODE`` shows: fixed texts only.
NOTICES = {
    "name": "Your name was saved.",
    "email": "We sent a link to the new address. Your address changes once you open it.",
    "password": "Your password was changed. Your other sessions were signed out.",
    "session": "The session was signed out.",
    "others": "Your other sessions were signed out.",
    "app": "The app can no longer use your account. It will ask for your consent again.",
    "nothing": "Nothing changed: it had already ended.",
}


@dataclass(frozen=True)
class Holder:
    """The browser's live session and its user."""

    who: SignedIn
    user: User


def _services(state: AppState) -> Services:
    return Services(state["pool"], state["passwords"], state["mailing"], state["settings"])


async def _holder(request: Request[AppState]) -> Holder | None:
    who = await signed_in(request)  # moves the session's last-seen time
    if who is None:
        return None
    user = await users.by_id(request.state["pool"], who.user_id)
    return None if user is None else Holder(who, user)


async def _posted(
    request: Request[AppState], *names: str
) -> tuple[Holder, dict[str, str | None]] | Response:
    """The form's ``names`` and the signed-in holder, or the answer refusing the post: without a
    session, the sign-in (nothing changed); with a CSRF token not of this session, a 400 page."""
    cookies = request.state["cookies"]
    try:
        form = await read_form(request)
        fields = {name: form.get(name) for name in (*names, "csrf_token")}
    except OAuthError:
        return error_page(request, 400, *INVALID)
    holder = await _holder(request)
    if holder is None:
        return redirect(SIGN_IN)
    csrf = fields.pop("csrf_token")
    if not cookies.csrf_ok("account", request.cookies.get(cookies.session), csrf):
        return error_page(request, 400, *FORGED)
    return holder, fields


def _done(code: str) -> Response:
    return redirect(f"{ACCOUNT}?done={code}")


def _proof(request: Request[AppState], password: str | None) -> Proof:
    cookies = request.state["cookies"]
    device = request.cookies.get(cookies.device)
    return Proof(password or "", client_ip(request), device, cookies.devices)


async def _page(
    request: Request[AppState],
    holder: Holder,
    *,
    status_code: int = 200,
    notice: str | None = None,
    errors: dict[str, list[str]] | None = None,
) -> Response:
    state, cookies = request.state, request.state["cookies"]
    services, now = _services(state), state["clock"].now()
    return render(
        request,
        "account.html",
        status_code,
        user=holder.user,
        notice=notice,
        errors=errors or {},
        sessions=await list_sessions(services, holder.user.id, holder.who.sid, now),
        apps=await list_apps(services, holder.user.id),
        csrf_token=cookies.csrf_token("account", request.cookies.get(cookies.session, "")),
    )


async def _refused(
    request: Request[AppState], holder: Holder, section: str, error: ProfileError
) -> Response:
    return await _page(
        request, holder, status_code=error.status_code, errors={section: error.messages}
    )


async def show_account(request: Request[AppState]) -> Response:
    holder = await _holder(request)
    if holder is None:
        return redirect(SIGN_IN)
    notice = NOTICES.get(request.query_params.get("done") or "")
    return await _page(request, holder, notice=notice)


async def submit_profile(request: Request[AppState]) -> Response:
    posted = await _posted(request, "name")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    try:
        await profile.change_name(
            _services(state), holder.user, fields["name"], state["clock"].now()
        )
    except ProfileError as refused:
        return await _refused(request, holder, "profile", refused)
    return _done("name")


async def submit_email(request: Request[AppState]) -> Response:
    posted = await _posted(request, "email", "password")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    proof = _proof(request, fields["password"])
    try:
        await profile.request_email_change(
            _services(state), holder.user, fields["email"], proof, state["clock"].now()
        )
    except ProfileError as refused:
        return await _refused(request, holder, "email", refused)
    return _done("email")


async def submit_password(request: Request[AppState]) -> Response:
    posted = await _posted(request, "current_password", "new_password", "confirm_password")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    now, cookies = state["clock"].now(), state["cookies"]
    try:
        user = await profile.change_password(
            _services(state),
            holder.user,
            _proof(request, fields["current_password"]),
            fields["new_password"],
            fields["confirm_password"],
            keep_sid=holder.who.sid,
            now=now,
        )
    except ProfileError as refused:
        return await _refused(request, holder, "password", refused)
    response = _done("password")
    cookies.set_device(response, cookies.devices.issue(user, now))  # the old one named the old hash
    return response


async def submit_end_session(request: Request[AppState]) -> Response:
    posted = await _posted(request, "sid")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    ended = await end_session(_services(state), holder.user.id, fields["sid"], state["clock"].now())
    return _done("session" if ended else "nothing")


async def submit_end_others(request: Request[AppState]) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    (holder, _), state = posted, request.state
    now = state["clock"].now()
    ended = await end_other_sessions(_services(state), holder.user.id, holder.who.sid, now)
    return _done("others" if ended else "nothing")


async def submit_revoke_app(request: Request[AppState]) -> Response:
    posted = await _posted(request, "client_id")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    now = state["clock"].now()
    revoked = await revoke_app(_services(state), holder.user.id, fields["client_id"], now)
    return _done("app" if revoked else "nothing")
