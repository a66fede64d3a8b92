"""``/login/enrol``: IDP_MFA=required, and the user who just signed in with a password has no
second factor: they set up an authenticator app or, where passkeys work, a passkey before the
sign-in completes (Keycloak's "Configure OTP" and "WebAuthn Register" required actions). The
rules are ``idp.mfa.enrolment``'s, as on ``/account/security``; the confirming code proves the
app, and the passkey's creation (with user verification, bound to this origin) proves the
passkey, so the session is then upgraded with the factor's amr (RFC 8176) and the parked request
goes on (``proceed``).

The page serves the browser's signed-in session (the forms carry the account pages' CSRF token,
bound to its cookie) and the parked request named by ``request``; ``proceed`` decides again
what the request still needs, so nothing here can skip a step. A GET only shows the page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.accounts.profile import ProfileError
from idp.mfa import enrolment
from idp.mfa.challenge import TOTP_AMR, step_up_session
from idp.mfa.enrolment import PendingTotp
from idp.mfa.passkeys import PasskeyAnswer, amr_of
from idp.web.account_security import grouped, qr_svg
from idp.web.account_session import (
    Holder,
    csrf_token,
    holder_of,
    passkey_registration,
    posted_form,
    services_of,
)
from idp.web.authorize import Pending, proceed, resume
from idp.web.passkey_login import NO_PASSKEYS
from idp.web.security import client_ip
from idp.web.state import AppState
from idp.web.templates import error_page, render

EXPIRED = ("This sign-in has expired", "It took too long or was already completed. Sign in again.")


async def _page(
    request: Request[AppState],
    holder: Holder,
    pending: Pending,
    *,
    setup: PendingTotp | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    ceremony = None if setup is not None else await passkey_registration(request, holder)
    return render(
        request,
        "enrol_factor.html",
        status_code,
        request_id=pending.token,
        passkey=ceremony,
        setup=setup,
        qr=None if setup is None else qr_svg(setup.uri),
        key=None if setup is None else grouped(setup.secret),
        error=error,
        csrf_token=csrf_token(request),
    )


async def _pending(request: Request[AppState], token: str | None) -> Pending | None:
    """The parked request, while it waits for its login step; None unless IDP_MFA=required
    (the only policy that sends anyone here; elsewhere /account/security sets a factor up)."""
    if request.state["settings"].mfa != "required":
        return None
    pending = await resume(request, token)
    return pending if pending is not None and pending.waiting_for == "login" else None


async def show_enrol(request: Request[AppState]) -> Response:
    pending = await _pending(request, request.query_params.get("request"))
    holder = await holder_of(request)
    if pending is None or holder is None:
        return error_page(request, 400, *EXPIRED)
    return await _page(request, holder, pending)


async def _posted(
    request: Request[AppState], *names: str
) -> tuple[Holder, Pending, dict[str, str | None]] | Response:
    posted = await posted_form(request, "request", *names)
    if isinstance(posted, Response):
        return posted
    holder, fields = posted
    pending = await _pending(request, fields["request"])
    if pending is None:
        return error_page(request, 400, *EXPIRED)
    return holder, pending, fields


async def submit_enrol_begin(request: Request[AppState]) -> Response:
    """A new key for the app, shown once with its QR code."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    (holder, pending, _), state = posted, request.state
    try:
        setup = await enrolment.begin_totp(services_of(state), holder.user, state["clock"].now())
    except ProfileError as refused:  # set up meanwhile (another tab): the request decides
        error = " ".join(refused.messages)
        return await _page(request, holder, pending, error=error, status_code=409)
    return await _page(request, holder, pending, setup=setup)


async def submit_enrol_confirm(request: Request[AppState]) -> Response:
    """The app's first code sets it up and upgrades the session; then the request goes on."""
    posted = await _posted(request, "code")
    if isinstance(posted, Response):
        return posted
    (holder, pending, fields), state = posted, request.state
    services, now = services_of(state), state["clock"].now()
    try:
        await enrolment.confirm_totp(services, holder.user, fields["code"], now)
    except ProfileError as refused:  # the same key again, to try another code
        setup = await enrolment.pending_totp(services, holder.user)
        error = " ".join(refused.messages)
        status_code = refused.status_code
        return await _page(
            request, holder, pending, setup=setup, error=error, status_code=status_code
        )
    return await _go_on(request, holder, pending, TOTP_AMR)


async def submit_enrol_passkey(request: Request[AppState]) -> Response:
    """The passkey made for the page's options is registered and upgrades the session (password
    and passkey: RFC 8176 "hwk"/"swk", "user", "mfa"); then the request goes on."""
    posted = await _posted(request, "name", "challenge", "credential")
    if isinstance(posted, Response):
        return posted
    (holder, pending, fields), state = posted, request.state
    keys = state["passkeys"]
    if keys is None:
        return error_page(request, 404, *NO_PASSKEYS)
    answer = PasskeyAnswer(fields["challenge"] or "", fields["credential"] or "", fields["name"])
    now = state["clock"].now()
    try:
        added = await enrolment.add_passkey(
            services_of(state), keys, holder.who, holder.user, answer, now
        )
    except ProfileError as refused:
        error = " ".join(refused.messages)
        return await _page(request, holder, pending, error=error, status_code=refused.status_code)
    return await _go_on(request, holder, pending, ("pwd", *amr_of(added)))


async def _go_on(
    request: Request[AppState], holder: Holder, pending: Pending, amr: tuple[str, ...]
) -> Response:
    """The session upgraded by the factor just set up, then the request goes on."""
    state = request.state
    now = state["clock"].now()
    upgraded = await step_up_session(state["pool"], holder.who, amr, client_ip(request), now)
    if upgraded is None:
        return error_page(request, 400, *EXPIRED)
    return await proceed(request, pending.auth, upgraded, pending=pending)
