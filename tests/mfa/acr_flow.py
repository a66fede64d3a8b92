"""What the tests of acr requirements share (essential acr, --require-mfa, IDP_MFA=required):
a running app with a first-party client and a user, and the steps of a sign-in."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pyotp

from idp.db.users import User
from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.factories import PASSWORD, make_client, make_user
from tests.oauth.flow import Authorization, exchange_code, hidden_fields, query_of

REDIRECT = "https://app.example/callback"
SECRET = pyotp.random_base32(length=32)
SECOND_FACTOR = "/login/second-factor"
PWD = "urn:idp:acr:pwd"
MFA = "urn:idp:acr:mfa"
EMAIL = "alice@example.com"


@dataclass
class Setup:
    app: Instance
    http: httpx.AsyncClient
    client_id: str
    secret: str
    user: User

    def auth(self) -> Authorization:
        return Authorization(self.client_id, REDIRECT, scope="openid email")


@asynccontextmanager
async def running(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    require_mfa: bool = False,
    **overrides: object,
) -> AsyncIterator[Setup]:
    """The app (``overrides`` of its settings) with a first-party client, ``require_mfa`` or
    not, and a user without a second factor."""
    client, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email"),
        first_party=True,
    )
    if require_mfa:
        await pool.execute(
            "UPDATE clients SET require_mfa = true WHERE client_id = $1", client.client_id
        )
    user = await make_user(pool, EMAIL)
    async with app_instance(**overrides) as app:
        yield Setup(app, app.client, client.client_id, secret, user)


def essential(*values: str, key: str = "values") -> str:
    """A claims parameter asking for an essential acr among ``values`` (OIDC Core §5.5.1.1)."""
    wanted: dict[str, Any] = {"essential": True}
    wanted[key] = values[0] if key == "value" else list(values)
    return json.dumps({"id_token": {"acr": wanted}})


async def password_login(setup: Setup, location: str) -> httpx.Response:
    """Follow ``location`` to /login and post the password: the answer to the post."""
    assert location.startswith("/login?"), location
    page = await setup.http.get(location)
    assert page.status_code == 200, page.text
    fields = hidden_fields(page.text)
    return await setup.http.post("/login", data={**fields, "email": EMAIL, "password": PASSWORD})


async def password_session(setup: Setup) -> None:
    """A session signed in with the password only."""
    auth = setup.auth()
    started = await setup.http.get(auth.url())
    done = await password_login(setup, started.headers["location"])
    assert done.headers["location"].startswith(REDIRECT), done.text


async def give_code(setup: Setup, code: str) -> httpx.Response:
    """The second-factor page, then ``code`` posted to it."""
    page = await setup.http.get(SECOND_FACTOR)
    assert page.status_code == 200, page.text
    return await setup.http.post(SECOND_FACTOR, data={**hidden_fields(page.text), "code": code})


def error_of(answer: httpx.Response, auth: Authorization) -> str:
    """The error of an authorization response redirected to the client (with its state)."""
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT), location
    query = query_of(location)
    assert query["state"] == auth.state
    return query["error"]


async def id_token_of(setup: Setup, auth: Authorization, answer: httpx.Response) -> dict[str, Any]:
    """The claims of the ID token the code of ``answer`` (a redirect to the client) gets."""
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT), location
    query = query_of(location)
    assert "error" not in query, query
    tokens = await exchange_code(setup.http, setup.client_id, setup.secret, query["code"], auth)
    assert tokens.status_code == 200, tokens.text
    payload = tokens.json()["id_token"].split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return claims
