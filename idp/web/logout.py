"""``GET|POST /logout`` (OIDC RP-Initiated Logout 1.0): end the session, then go back to the
app's registered post-logout URI, or show a signed-out page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.db import sessions
from idp.hashing import digest
from idp.oauth.errors import OAuthError
from idp.oauth.logout import check_logout
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


# Parameters carried through the confirmation form (the hint, if any, was not valid).
_CARRIED = ("client_id", "post_logout_redirect_uri", "state")


async def logout(request: Request[AppState]) -> Response:
    """§2: without a valid id_token_hint the user is asked first (a cross-site link must not
    sign anyone out); the confirmation is a CSRF-protected POST."""
    state = request.state
    cookies = state["cookies"]
    params = await _params(request)
    decision = await check_logout(
        params,
        state["clients"],
        state["keyring"].snapshot.verification_keys,
        state["settings"].issuer,
    )
    cookie = request.cookies.get(cookies.session)
    now = state["clock"].now()
    live = (
        bool(cookie) and await sessions.live(state["pool"], digest(cookie or ""), now) is not None
    )
    if live and not decision.hinted:
        confirmed = request.method == "POST" and _get(params, "confirm") == "yes"
        if not confirmed:
            carried = {name: value for name in _CARRIED if (value := _get(params, name))}
            return render(
                "logout_confirm.html",
                client_name=decision.client.name if decision.client else None,
                carried=carried,
                csrf_token=cookies.csrf_token("logout", cookie or ""),
            )
        if not cookies.csrf_ok("logout", cookie, _get(params, "csrf_token")):
            return error_page(400, "This form has expired", "Reload the page and try again.")
    if live:
        await sessions.end(state["pool"], digest(cookie or ""), now)
    response: Response
    if decision.redirect_to is not None:
        response = redirect(decision.redirect_to)
    else:
        name = decision.client.name if decision.client is not None else None
        response = render("signed_out.html", client_name=name)
    cookies.clear(response, cookies.session)
    return response


def _get(params: Params, name: str) -> str | None:
    try:
        return params.get(name)
    except OAuthError:
        return None
