"""``GET /demo/start`` and ``GET /demo/callback`` (demo mode only): the demo client, built as a
public client should be. The start page keeps a fresh PKCE verifier, state and nonce in a
short-lived cookie for the callback and sends the browser to /authorize; the callback checks
the state, exchanges the code with the verifier, checks the nonce, and shows the verified
tokens, decoded."""

from __future__ import annotations

import hmac
import json
from typing import Any

from joserfc import jwt
from starlette.requests import Request
from starlette.responses import Response

from idp.demo import (
    CALLBACK_PATH,
    DEMO_CLIENT_ID,
    FLOW_TTL,
    DemoFlow,
    authorization_url,
    start_url,
)
from idp.oauth import grants
from idp.oauth.errors import OAuthError
from idp.oauth.params import Params
from idp.settings import SIGNING_ALGS
from idp.web.authorize import redirect
from idp.web.state import AppState
from idp.web.templates import error_page, render

_COOKIE = "idp_demo_flow"


def _cookie_name(request: Request[AppState]) -> str:
    # __Secure- rather than __Host-: the cookie is scoped to the callback's path, not "/".
    return f"__Secure-{_COOKIE}" if request.state["cookies"].secure else _COOKIE


async def demo_start(request: Request[AppState]) -> Response:
    """A GET that only sets this browser's flow cookie: it changes no server state."""
    flow = DemoFlow.new()
    response = redirect(authorization_url(request.state["settings"], flow))
    response.set_cookie(
        _cookie_name(request), flow.cookie_value(), max_age=FLOW_TTL, path=CALLBACK_PATH,
        secure=request.state["cookies"].secure, httponly=True, samesite="lax",
    )  # fmt: skip
    return response


async def demo_callback(request: Request[AppState]) -> Response:
    """Every answer ends the flow: the cookie is for one callback."""
    response = await _finish(request)
    response.delete_cookie(
        _cookie_name(request), path=CALLBACK_PATH,
        secure=request.state["cookies"].secure, httponly=True, samesite="lax",
    )  # fmt: skip
    return response


async def _finish(request: Request[AppState]) -> Response:
    state = request.state
    settings = state["settings"]
    query = request.query_params
    if "error" in query:
        detail = query.get("error_description") or query["error"]
        return error_page(request, 400, "The sign-in did not complete", detail)
    code, returned_state = query.get("code"), query.get("state")
    if not code or not returned_state or query.get("iss") != settings.issuer:
        return error_page(request, 400, "Not a demo redirect", "code, state and iss are required.")
    flow = DemoFlow.from_cookie(request.cookies.get(_cookie_name(request)))
    start_again = _START_AGAIN.format(start=start_url(settings))
    if flow is None:
        return error_page(request, 400, "This sign-in did not start here", start_again)
    if not hmac.compare_digest(flow.state.encode(), returned_state.encode("utf-8", "replace")):
        return error_page(request, 400, "This is not the sign-in this browser started", start_again)
    client = await state["clients"].find(DEMO_CLIENT_ID)
    if client is None:
        return error_page(request, 400, "No demo client", "Start idp with --demo.")
    params = Params(
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", settings.issuer + CALLBACK_PATH),
            ("code_verifier", flow.verifier),
        ]
    )
    try:
        tokens = await grants.exchange(params, client, state["token_context"])
    except OAuthError as error:
        return error_page(
            request, 400, "The code exchange failed", error.description or error.error
        )
    return _show(request, tokens, flow)


_START_AGAIN = (
    "The demo keeps its PKCE code verifier in a short-lived cookie that {start} sets for this "
    "browser; it is missing, expired, or from another sign-in. Open {start} to sign in again."
)


def _show(request: Request[AppState], tokens: dict[str, Any], flow: DemoFlow) -> Response:
    keys = request.state["keyring"].snapshot.verification_keys
    shown = {}
    for name in ("id_token", "access_token"):
        decoded = jwt.decode(tokens[name], keys, algorithms=list(SIGNING_ALGS))
        if name == "id_token" and not hmac.compare_digest(
            str(decoded.claims.get("nonce", "")).encode(), flow.nonce.encode()
        ):  # OIDC Core §3.1.3.7, step 11
            return error_page(
                request, 400, "The ID token is not for this sign-in", "Its nonce differs."
            )
        shown[name] = json.dumps({"header": decoded.header, "claims": decoded.claims}, indent=2)
    return render(request, "demo.html", tokens=shown, scope=tokens.get("scope", ""))
