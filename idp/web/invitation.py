"""``/accept-invitation``: the page an invitation mail links to, where the invitee sets their
name and first password (no JavaScript needed). The rules are idp.accounts.invitations'."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.accounts import invitations
from idp.accounts.credentials import PasswordRejectedError
from idp.oauth.errors import OAuthError
from idp.web.anonymous import form_csrf_ok, form_page
from idp.web.forms import read_form
from idp.web.password_reset import FORGED, INVALID_FORM
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page, render

PURPOSE = "accept-invitation"
LINK_INVALID = (
    "This invitation no longer works",
    "The link is incomplete, was already used, or has expired. Ask whoever invited you for a "
    "new invitation.",
)


def invitation_form(
    request: Request[AppState],
    token: str | None,
    email: str,
    name: str,
    problems: list[str],
    status_code: int = 200,
) -> Response:
    page = {"token": token, "email": email, "full_name": name, "problems": problems}
    return form_page(request, "accept_invitation.html", PURPOSE, status_code, **page)


async def show_invitation(request: Request[AppState]) -> Response:
    """The form, the name prefilled; the token stays unused until it is posted."""
    state = request.state
    token = request.query_params.get("token")
    user = await invitations.open_invitation(state["pool"], token, state["clock"].now())
    if user is None:
        return error_page(request, 400, *LINK_INVALID)
    return invitation_form(request, token, user.email, user.name or "", [])


async def submit_invitation(request: Request[AppState]) -> Response:
    state = request.state
    try:
        form = await read_form(request)
        token, name_text, csrf = form.get("token"), form.get("name"), form.get("csrf_token")
        password = form.get("password") or ""
    except OAuthError:
        return error_page(request, 400, *INVALID_FORM)
    if not form_csrf_ok(request, PURPOSE, csrf):
        return error_page(request, 400, *FORGED)
    now = state["clock"].now()
    user = await invitations.open_invitation(state["pool"], token, now)
    if user is None:
        return error_page(request, 400, *LINK_INVALID)
    try:
        name = invitations.clean_name(name_text)
        await invitations.accept(
            state["pool"],
            state["passwords"],
            user,
            token=token,
            password=password,
            name=name,
            now=now,
            min_length=state["settings"].password_min_length,
            ip=client_ip(request),
        )
    except invitations.NameRejectedError as rejected:
        return invitation_form(request, token, user.email, name_text or "", [str(rejected)], 400)
    except PasswordRejectedError as rejected:
        return invitation_form(request, token, user.email, name_text or "", rejected.problems, 400)
    except invitations.InvitationLinkError:
        return error_page(request, 400, *LINK_INVALID)
    return render(request, "invitation_accepted.html", email=user.email)
