"""What the tests of sign-ins with a second factor share (step-up, passkeys, essential acr,
--require-mfa, IDP_MFA=required): a running app with a first-party client and a user, and the
steps of a sign-in."""

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

from idp.db.clients import Client
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


async def first_party_client(pool: asyncpg.Pool, settings: Settings) -> tuple[Client, str]:
    """A confidential first-party client (no consent step) of the code flow, redirecting to
    ``REDIRECT`` with scopes openid and email; its secret."""
    return await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email"),
        first_party=True,
    )


@asynccontextmanager
async def running(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    require_mfa: bool = False,
    email: str = EMAIL,
    **overrides: object,
) -> AsyncIterator[Setup]:
    """The app (``overrides`` of its settings) with a first-party client, ``require_mfa`` or
    not, and a user (``email``) without a second factor."""
    client, secret = await first_party_client(pool, settings)
    if require_mfa:
        await pool.execute(
            "UPDATE clients SET require_mfa = true WHERE client_id = $1", client.client_id
        )
    user = await make_user(pool, email)
    async with app_instance(**overrides) as app:
        yield Setup(app, app.client, client.client_id, secret, user)


def essential(*values: str, key: str = "values") -> str:
    """A claims parameter asking for an essential acr among ``values`` (OIDC Core §5.5.1.1)."""
    wanted: dict[str, Any] = {"essential": True}
    wanted[key] = values[0] if key == "value" else list(values)
    return json.dumps({"id_token": {"acr": wanted}})


async def post_password(
    http: httpx.AsyncClient, request: str | httpx.URL, email: str = EMAIL
) -> httpx.Response:
    """The authorization ``request`` (a URL), its /login page and ``email``'s password posted
    there: the answer to the post."""
    started = await http.get(request)
    location = started.headers["location"]
    assert location.startswith("/login?"), location
    page = await http.get(location)
    assert page.status_code == 200, page.text
    fields = hidden_fields(page.text)
    return await http.post("/login", data={**fields, "email": email, "password": PASSWORD})


async def password_login(
    setup: Setup, auth: Authorization | None = None, **extra: str
) -> httpx.Response:
    """``post_password`` for ``auth`` (a new request if none; ``extra`` parameters added)."""
    return await post_password(setup.http, (auth or setup.auth()).url(**extra))


async def password_session(setup: Setup) -> None:
    """A session signed in with the password only."""
    done = await password_login(setup)
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
    assert query["state"] == auth.state
    tokens = await exchange_code(setup.http, setup.client_id, setup.secret, query["code"], auth)
    assert tokens.status_code == 200, tokens.text
    payload = tokens.json()["id_token"].split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return claims
