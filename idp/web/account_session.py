"""What every page under ``/account`` shares: the signed-in holder of the browser's session,
and a form posted with a CSRF token bound to that session's cookie. Without a session a post
leads to the sign-in (nothing changed); with a token not of this session it is a 400 page."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from idp.accounts.profile import Proof
from idp.accounts.services import Services
from idp.db import users
from idp.db.users import User
from idp.mfa.passkeys import Ceremony
from idp.oauth.code_flow import SignedIn
from idp.oauth.errors import OAuthError
from idp.web.account_signin import SIGN_IN
from idp.web.authorize import redirect, signed_in
from idp.web.forms import read_form
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page

CSRF_PURPOSE = "account"
INVALID = ("Invalid form", "The form was not sent correctly.")
FORGED = ("This form has expired", "Reload the account page and try again.")


@dataclass(frozen=True)
class Holder:
    """The browser's live session and its user."""

    who: SignedIn
    user: User


def services_of(state: AppState) -> Services:
    return Services(state["pool"], state["passwords"], state["mailing"], state["settings"])


async def holder_of(request: Request[AppState]) -> Holder | None:
    who = await signed_in(request)  # moves the session's last-seen time
    if who is None:
        return None
    user = await users.by_id(request.state["pool"], who.user_id)
    return None if user is None else Holder(who, user)


def csrf_token(request: Request[AppState]) -> str:
    """The token the account pages' forms carry, bound to this browser's session cookie."""
    cookies = request.state["cookies"]
    return cookies.csrf_token(CSRF_PURPOSE, request.cookies.get(cookies.session, ""))


async def posted_form(
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
    holder = await holder_of(request)
    if holder is None:
        return redirect(SIGN_IN)
    csrf = fields.pop("csrf_token")
    if not cookies.csrf_ok(CSRF_PURPOSE, request.cookies.get(cookies.session), csrf):
        return error_page(request, 400, *FORGED)
    return holder, fields


async def passkey_registration(request: Request[AppState], holder: Holder) -> Ceremony | None:
    """The options to add a passkey for the holder, bound to their session; None where passkeys
    cannot work (idp.mfa.passkeys)."""
    state, keys, user = request.state, request.state["passkeys"], holder.user
    if keys is None:
        return None
    return await keys.registration(
        state["pool"], user.id, user.email, user.name, holder.who.sid, state["clock"].now()
    )


def proof_of(request: Request[AppState], password: str | None) -> Proof:
    """The current password a form gave, with what a sign-in is throttled by."""
    cookies = request.state["cookies"]
    device = request.cookies.get(cookies.device)
    return Proof(password or "", client_ip(request), device, cookies.devices)
