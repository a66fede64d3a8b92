"""``GET /demo/callback`` (demo mode only): the demo client's redirect URI. It exchanges the
code like any public client would and shows the verified tokens, decoded."""

from __future__ import annotations

import json

from joserfc import jwt
from starlette.requests import Request
from starlette.responses import Response

from idp.demo import CALLBACK_PATH, DEMO_CLIENT_ID, code_verifier
from idp.oauth import token_endpoint
from idp.oauth.errors import OAuthError
from idp.oauth.params import Params
from idp.settings import SIGNING_ALGS
from idp.web.state import AppState
from idp.web.templates import error_page, render


async def demo_callback(request: Request[AppState]) -> Response:
    state = request.state
    settings = state["settings"]
    query = request.query_params
    if "error" in query:
        return error_page(400, "The sign-in did not complete", query.get("error_description")
                          or query["error"])  # fmt: skip
    code, returned_state = query.get("code"), query.get("state")
    if not code or not returned_state or query.get("iss") != settings.issuer:
        return error_page(400, "Not a demo redirect", "code, state and iss are required.")
    client = await state["clients"].find(DEMO_CLIENT_ID)
    if client is None:
        return error_page(400, "No demo client", "Start idp with --demo.")
    params = Params(
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", settings.issuer + CALLBACK_PATH),
            ("code_verifier", code_verifier(settings, returned_state)),
        ]
    )
    try:
        tokens = await token_endpoint.exchange(params, client, state["token_context"])
    except OAuthError as error:
        return error_page(400, "The code exchange failed", error.description or error.error)
    keys = state["keyring"].snapshot.verification_keys
    shown = {}
    for name in ("id_token", "access_token"):
        decoded = jwt.decode(tokens[name], keys, algorithms=list(SIGNING_ALGS))
        shown[name] = json.dumps({"header": decoded.header, "claims": decoded.claims}, indent=2)
    return render("demo.html", tokens=shown, scope=tokens.get("scope", ""))
