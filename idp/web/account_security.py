"""``/account/security``: a signed-in person's second factors: an authenticator app, passkeys
and recovery codes. The session and CSRF checks are the account page's
(``idp.web.account_session``); the rules are ``idp.mfa.enrolment``'s and
``idp.mfa.passkeys``'. Where the issuer is an IP address there are no passkeys: the page says
why.

A change answers 303 back to ``/account/security?done=CODE`` (a fixed text), except the two
answers that show a secret once, rendered directly (``no-store``, like every page): the new
app's key with its QR code, and the new recovery codes (or the same as a text download). No GET
ever shows a key or a code. The QR code is an inline SVG drawn here (segno), with neither a
``style`` attribute nor a script: the CSP allows neither, nor a ``data:`` image."""

from __future__ import annotations

from datetime import datetime

import segno
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from webauthn.helpers import bytes_to_base64url

from idp.accounts.profile import ProfileError
from idp.mfa import enrolment
from idp.mfa.enrolment import PendingTotp
from idp.mfa.passkeys import PasskeyAnswer
from idp.web.account_session import (
    Holder,
    csrf_token,
    holder_of,
    passkey_registration,
    posted_form,
    proof_of,
    services_of,
)
from idp.web.account_signin import SIGN_IN
from idp.web.authorize import redirect
from idp.web.passkey_login import NO_PASSKEYS
from idp.web.security import HTML_HEADERS
from idp.web.state import AppState
from idp.web.templates import error_page, render

SECURITY = "/account/security"
DOWNLOAD_NAME = "idp-recovery-codes.txt"
# What ``?done=CODE`` shows: fixed texts only.
NOTICES = {
    "totp": "Your authenticator app is set up. Create recovery codes in case you lose it.",
    "totp-removed": "The authenticator app was removed.",
    "passkey": "Your passkey is added. You can sign in with it, without your password.",
    "passkey-removed": "The passkey was removed.",
    "nothing": "Nothing changed.",
    "mfa-required": "This service requires a second factor: set up an authenticator app or a "
    "passkey.",
}


def _done(code: str) -> Response:
    return redirect(f"{SECURITY}?done={code}")


def qr_svg(uri: str) -> Markup:
    """``uri`` as an inline SVG: sized by the stylesheet (no width, height or style)."""
    svg = segno.make(uri, error="m").svg_inline(
        scale=1, omitsize=True, svgclass="qr-code", lineclass=None, title="QR code of the key"
    )
    # segno writes the markup itself; the URI shapes only the path data, never text in it.
    return Markup(svg)  # noqa: S704


def grouped(secret: str) -> str:
    """The key as people type it: groups of four."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


async def _page(
    request: Request[AppState],
    holder: Holder,
    *,
    status_code: int = 200,
    notice: str | None = None,
    errors: dict[str, list[str]] | None = None,
    setup: PendingTotp | None = None,
    codes: list[str] | None = None,
) -> Response:
    services = services_of(request.state)
    ceremony = await passkey_registration(request, holder)
    return render(
        request,
        "account_security.html",
        status_code,
        user=holder.user,
        factors=await enrolment.factors_of(services, holder.user),
        passkey=ceremony,
        as_id=bytes_to_base64url,
        notice=notice,
        errors=errors or {},
        setup=setup,
        qr=None if setup is None else qr_svg(setup.uri),
        key=None if setup is None else grouped(setup.secret),
        codes=codes,
        csrf_token=csrf_token(request),
    )


async def _refused(
    request: Request[AppState],
    holder: Holder,
    section: str,
    error: ProfileError,
    setup: PendingTotp | None = None,
) -> Response:
    errors = {section: error.messages}
    return await _page(request, holder, status_code=error.status_code, errors=errors, setup=setup)


async def show_security(request: Request[AppState]) -> Response:
    holder = await holder_of(request)
    if holder is None:
        return redirect(SIGN_IN)
    notice = NOTICES.get(request.query_params.get("done") or "")
    return await _page(request, holder, notice=notice)


async def submit_totp_begin(request: Request[AppState]) -> Response:
    posted = await posted_form(request)
    if isinstance(posted, Response):
        return posted
    (holder, _), state = posted, request.state
    try:
        setup = await enrolment.begin_totp(services_of(state), holder.user, state["clock"].now())
    except ProfileError as refused:
        return await _refused(request, holder, "totp", refused)
    return await _page(request, holder, setup=setup)


async def submit_totp_confirm(request: Request[AppState]) -> Response:
    posted = await posted_form(request, "code")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    services = services_of(state)
    try:
        await enrolment.confirm_totp(services, holder.user, fields["code"], state["clock"].now())
    except ProfileError as refused:  # the same key again, to try another code
        setup = await enrolment.pending_totp(services, holder.user)
        return await _refused(request, holder, "totp", refused, setup=setup)
    return _done("totp")


async def submit_totp_remove(request: Request[AppState]) -> Response:
    posted = await posted_form(request, "password")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    proof = proof_of(request, fields["password"])
    try:
        removed = await enrolment.remove_totp(
            services_of(state), holder.user, proof, state["clock"].now()
        )
    except ProfileError as refused:
        return await _refused(request, holder, "totp", refused)
    return _done("totp-removed" if removed else "nothing")


async def submit_recovery_codes(request: Request[AppState]) -> Response:
    """New codes, shown once on the answer, or (``format=text``) as a text file to keep."""
    posted = await posted_form(request, "password", "format")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    now, proof = state["clock"].now(), proof_of(request, fields["password"])
    try:
        codes = await enrolment.create_recovery_codes(services_of(state), holder.user, proof, now)
    except ProfileError as refused:
        return await _refused(request, holder, "recovery", refused)
    if fields["format"] == "text":
        return _download(codes, holder, state["settings"].issuer, now)
    return await _page(request, holder, codes=codes)


def _download(codes: list[str], holder: Holder, issuer: str, now: datetime) -> Response:
    lines = [
        f"Recovery codes for {holder.user.email} at {issuer}",
        f"Created {now:%Y-%m-%d %H:%M} UTC. Each works once; new codes void these.",
        "",
        *codes,
        "",
    ]
    headers = {
        **HTML_HEADERS,
        "Content-Disposition": f'attachment; filename="{DOWNLOAD_NAME}"',
    }
    return Response("\n".join(lines), media_type="text/plain", headers=headers)


async def submit_passkey_add(request: Request[AppState]) -> Response:
    """The passkey the browser made for the options the page showed (idp.mfa.passkeys)."""
    posted = await posted_form(request, "name", "challenge", "credential")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    keys = state["passkeys"]
    if keys is None:
        return error_page(request, 404, *NO_PASSKEYS)
    answer = PasskeyAnswer(fields["challenge"] or "", fields["credential"] or "", fields["name"])
    try:
        await enrolment.add_passkey(
            services_of(state), keys, holder.who, holder.user, answer, state["clock"].now()
        )
    except ProfileError as refused:
        return await _refused(request, holder, "passkeys", refused)
    return _done("passkey")


async def submit_passkey_remove(request: Request[AppState]) -> Response:
    posted = await posted_form(request, "credential_id", "password")
    if isinstance(posted, Response):
        return posted
    (holder, fields), state = posted, request.state
    proof = proof_of(request, fields["password"])
    try:
        await enrolment.remove_passkey(
            services_of(state), holder.user, fields["credential_id"], proof, state["clock"].now()
        )
    except ProfileError as refused:
        return await _refused(request, holder, "passkeys", refused)
    return _done("passkey-removed")
