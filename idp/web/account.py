"""``/account``: a signed-in person's own page: profile, email, password, sessions and connected
apps. Each section is a form posting to its own path under ``/account``, with a CSRF token bound
to the session cookie; a change answers 303 back to ``/account?done=CODE``, shown as a fixed
line of text (never the input), and a refused one shows the page again with why. The rules are
``idp.accounts``'s; these handlers read the form, check the session and the token, and render."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.accounts import profile
from idp.accounts.account_sessions import end_other_sessions, end_session, list_sessions
from idp.accounts.connected_apps import list_apps, revoke_app
from idp.accounts.profile import ProfileError
from idp.web.account_session import (
    Holder,
    csrf_token,
    holder_of,
    posted_form,
    proof_of,
    services_of,
)
from idp.web.account_signin import ACCOUNT, SIGN_IN
from idp.web.authorize import redirect
from idp.web.state import AppState
from idp.web.templates import render

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


def _done(code: str) -> Response:
    return redirect(f"{ACCOUNT}?done={code}")


async def _page(
    request: Request[AppState],
    holder: Holder,
    *,
    status_code: int = 200,
    notice: str | None = None,
    errors: dict[str, list[str]] | None = None,
) -> Response:
    state = request.state
    services, now = services_of(state), state["clock"].now()
    return render(
        request,
        "account.html",
        status_code,
        user=holder.user,
        notice=notice,
        errors=errors or {},
        sessions=await list_sessions(services, holder.user.id, holder.who.sid, now),
        apps=await list_apps(services, holder.user.id),
        csrf_token=csrf_token(request),
    )


async def _refused(
    request: Request[AppState], holder: Holder, section: str, error: ProfileError
) -> Response:
    return await _page(
        request, holder, status_code=error.status_code, errors={section: error.messages}
    )


async def show_account(request: Request[AppState]) -> Response:
    holder = await holder_of(request)
    if holder is None:
        return redirect(SIGN_IN)
    notice = NOTICES.get(request.query_params.get("done") or "")
    return await _page(request, holder, notice=notice)


async def submit_profile(request: Request[AppState]) -> Response:
    posted = await posted_form(request, "name")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    try:
        await profile.change_name(
            services_of(state), holder.user, fields["name"], state["clock"].now()
        )
    except ProfileError as refused:
        return await _refused(request, holder, "profile", refused)
    return _done("name")


async def submit_email(request: Request[AppState]) -> Response:
    posted = await posted_form(request, "email", "password")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    proof = proof_of(request, fields["password"])
    try:
        await profile.request_email_change(
            services_of(state), holder.user, fields["email"], proof, state["clock"].now()
        )
    except ProfileError as refused:
        return await _refused(request, holder, "email", refused)
    return _done("email")


async def submit_password(request: Request[AppState]) -> Response:
    posted = await posted_form(request, "current_password", "new_password", "confirm_password")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    now, cookies = state["clock"].now(), state["cookies"]
    try:
        user = await profile.change_password(
            services_of(state),
            holder.user,
            proof_of(request, fields["current_password"]),
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
    posted = await posted_form(request, "sid")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    ended = await end_session(
        services_of(state), holder.user.id, fields["sid"], state["clock"].now()
    )
    return _done("session" if ended else "nothing")


async def submit_end_others(request: Request[AppState]) -> Response:
    posted = await posted_form(request)
    if isinstance(posted, Response):
        return posted
    (holder, _), state = posted, request.state
    now = state["clock"].now()
    ended = await end_other_sessions(services_of(state), holder.user.id, holder.who.sid, now)
    return _done("others" if ended else "nothing")


async def submit_revoke_app(request: Request[AppState]) -> Response:
    posted = await posted_form(request, "client_id")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    now = state["clock"].now()
    revoked = await revoke_app(services_of(state), holder.user.id, fields["client_id"], now)
    return _done("app" if revoked else "nothing")
