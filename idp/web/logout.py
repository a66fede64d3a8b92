"""``GET|POST /logout`` (OIDC RP-Initiated Logout 1.0): end the session, then go back to the
app's registered post-logout URI, or show a signed-out page."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from idp.db import sessions
from idp.hashing import digest
from idp.oauth.errors import OAuthError
from idp.oauth.logout import check_logout
from idp.oauth.params import Params
from idp.web.authorize import redirect
from idp.web.forms import read_form
from idp.web.state import AppState
from idp.web.templates import render


async def _params(request: Request[AppState]) -> Params:
    if request.method == "POST":
        try:
            return await read_form(request)
        except OAuthError:
            return Params([])
    query = request.scope["query_string"].decode("utf-8", "surrogateescape")
    try:
        return Params(parse_qsl(query, errors="surrogateescape", max_num_fields=32))
    except ValueError:
        return Params([])


async def logout(request: Request[AppState]) -> Response:
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
    if cookie:
        await sessions.end(state["pool"], digest(cookie), state["clock"].now())
    response: Response
    if decision.redirect_to is not None:
        response = redirect(decision.redirect_to)
    else:
        name = decision.client.name if decision.client is not None else None
        response = render("signed_out.html", client_name=name)
    cookies.clear(response, cookies.session)
    return response
