"""``GET|POST /logout`` (OIDC RP-Initiated Logout 1.0): end the session, then go back to the
app's registered post-logout URI, or show a signed-out page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.db import sessions
from idp.db.sessions import Session
from idp.hashing import digest
from idp.oauth.errors import OAuthError
from idp.oauth.logout import LogoutRequest, check_logout
from idp.oauth.params import Params
from idp.web.authorize import redirect
from idp.web.forms import read_form, read_query
from idp.web.state import AppState
from idp.web.templates import error_page, render


async def _params(request: Request[AppState]) -> Params:
    """Bad input names no client: the logout then shows a page and redirects nowhere."""
    try:
        return (
            await read_form(request)
            if request.method == "POST"
            else read_query(request, max_fields=32)
        )
    except OAuthError:
        return Params([])


async def logout(request: Request[AppState]) -> Response:
    """§2: the user is asked first unless a valid id_token_hint names this very session (a
    cross-site link, even with the linker's own ID token, must not sign anyone out; §6); the
    confirmation is a CSRF-protected POST. Without a live session there is nothing to end or
    to ask about: the user goes straight on to the registered URI, or sees the signed-out page."""
    state = request.state
    cookies = state["cookies"]
    params = await _params(request)
    decision = await check_logout(
        params,
        state["clients"],
        state["keyring"].snapshot.verification_keys,
        state["settings"].issuer,
    )
    cookie = request.cookies.get(cookies.session) or ""
    now = state["clock"].now()
    session = await sessions.live(state["pool"], digest(cookie), now) if cookie else None
    if session is not None and not _names(decision, session):
        if request.method != "POST" or _get(params, "confirm") != "yes":
            return _ask(request, decision, params, session, cookies.csrf_token("logout", cookie))
        if not cookies.csrf_ok("logout", cookie, _get(params, "csrf_token")):
            return error_page(
                request, 400, "This form has expired", "Reload the page and try again."
            )
    if session is not None:
        await sessions.end(state["pool"], digest(cookie), now)
    response: Response
    if decision.redirect_to is not None:
        response = redirect(decision.redirect_to)
    else:
        name = decision.client.name if decision.client is not None else None
        response = render(request, "signed_out.html", client_name=name)
    cookies.clear(response, cookies.session)
    return response


def _names(decision: LogoutRequest, session: Session) -> bool:
    return decision.hint is not None and decision.hint.names(str(session.user_id), session.sid)


def _ask(
    request: Request[AppState],
    decision: LogoutRequest,
    params: Params,
    session: Session,
    csrf_token: str,
) -> Response:
    """The confirmation carries the client the request identified (by client_id or by the
    hint), not the hint itself: once the user agrees, that client's registered URI is where the
    user goes (§3). A request in error carries nothing (§4: no redirect)."""
    carried: dict[str, str] = {}
    if decision.client is not None:
        carried["client_id"] = decision.client.client_id
    if decision.redirect_to is not None:
        for name in ("post_logout_redirect_uri", "state"):
            if (value := _get(params, name)) is not None:
                carried[name] = value
    return render(
        request,
        "logout_confirm.html",
        client_name=decision.client.name if decision.client else None,
        other_account=decision.hint is not None and decision.hint.sub != str(session.user_id),
        carried=carried,
        csrf_token=csrf_token,
    )


def _get(params: Params, name: str) -> str | None:
    try:
        return params.get(name)
    except OAuthError:
        return None
