"""Driving the hosted pages like a browser without JavaScript: follow redirects by hand, read
hidden fields from the HTML, post the forms; and the relying app's side: a code exchange, a
refresh, an introspection, and an app that signs its user in and refreshes."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx

from idp.oauth.pkce import s256
from idp.settings import Settings
from tests.conftest import Instance
from tests.factories import PASSWORD, make_client, make_user

REDIRECT = "https://app.example/callback"
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def hidden_fields(html: str) -> dict[str, str]:
    return dict(_HIDDEN.findall(html))


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


@dataclass
class Authorization:
    """One authorization request's secrets, as a client keeps them."""

    client_id: str
    redirect_uri: str
    scope: str = "openid profile email"
    state: str = ""
    nonce: str = ""
    verifier: str = ""

    def __post_init__(self) -> None:
        self.state = self.state or secrets.token_urlsafe(16)
        self.nonce = self.nonce or secrets.token_urlsafe(16)
        self.verifier = self.verifier or secrets.token_urlsafe(48)

    def url(self, **extra: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": s256(self.verifier),
            "code_challenge_method": "S256",
            **extra,
        }
        return "/authorize?" + urlencode(params)


async def sign_in(
    client: httpx.AsyncClient, login_location: str, email: str, password: str
) -> httpx.Response:
    """GET the login page named by a redirect, then post its form."""
    page = await client.get(login_location)
    assert page.status_code == 200, page.text
    fields = hidden_fields(page.text)
    return await client.post("/login", data={**fields, "email": email, "password": password})


async def exchange_code(
    client: httpx.AsyncClient, client_id: str, secret: str, code: str, auth: Authorization
) -> httpx.Response:
    """The client's side: POST /token with the code and its verifier (client_secret_basic)."""
    return await client.post(
        "/token",
        auth=(client_id, secret),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": auth.redirect_uri,
            "code_verifier": auth.verifier,
        },
    )


async def exchange_code_public(
    client: httpx.AsyncClient, code: str, auth: Authorization, redirect_uri: str | None = None
) -> httpx.Response:
    """A public client's side (RFC 6749 §4.1.3: ``client_id`` in the body, no secret): POST
    /token with the code and its verifier; ``redirect_uri`` as sent (default: the request's)."""
    return await client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "client_id": auth.client_id,
            "code": code,
            "redirect_uri": redirect_uri or auth.redirect_uri,
            "code_verifier": auth.verifier,
        },
    )


async def authorize_code(
    client: httpx.AsyncClient, auth: Authorization, email: str, password: str
) -> str:
    """The whole browser side: /authorize → /login → back to the client with a code."""
    response = await client.get(auth.url())
    assert response.status_code == 303, response.text
    if response.headers["location"].startswith("/login"):
        response = await sign_in(client, response.headers["location"], email, password)
        assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(auth.redirect_uri), location
    query = query_of(location)
    assert query["state"] == auth.state
    return query["code"]


async def refresh(
    client: httpx.AsyncClient, auth: tuple[str, str], refresh_token: str, **extra: str
) -> httpx.Response:
    """The client's side of a refresh (RFC 6749 §6, client_secret_basic)."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return await client.post("/token", auth=auth, data=data)


async def introspect(
    client: httpx.AsyncClient, auth: tuple[str, str], token: str, **extra: str
) -> dict[str, object]:
    """A resource server's introspection (RFC 7662 §2): a 200 that no cache keeps."""
    response = await client.post("/introspect", auth=auth, data={"token": token, **extra})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, object] = response.json()
    return body


class App:
    """A confidential client with the refresh_token grant, and a signed-in user."""

    def __init__(self, instance: Instance, client_id: str, secret: str, email: str) -> None:
        self.http = instance.client
        self.pool = instance.state["pool"]
        self.client_id, self.secret, self.email = client_id, secret, email

    async def sign_in(self, scope: str = "openid email roles") -> dict[str, str]:
        auth = Authorization(self.client_id, REDIRECT, scope=scope)
        code = await authorize_code(self.http, auth, self.email, PASSWORD)
        response = await exchange_code(self.http, self.client_id, self.secret, code, auth)
        assert response.status_code == 200, response.text
        tokens: dict[str, str] = response.json()
        return tokens

    async def refresh(self, refresh_token: str, **extra: str) -> httpx.Response:
        return await refresh(self.http, (self.client_id, self.secret), refresh_token, **extra)

    async def userinfo_status(self, access_token: str) -> int:
        response = await self.http.get(
            "/userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )
        return response.status_code


async def app_with_refresh(
    instance: Instance,
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    roles: tuple[str, ...] = (),
    email: str = "alice@example.com",
) -> App:
    """A first-party client allowed to refresh, redirecting to ``REDIRECT``, and a user."""
    client, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email", "roles", "offline_access"),
        first_party=True,
    )
    user = await make_user(pool, email, roles=roles)
    return App(instance, client.client_id, secret, user.email)


async def deny_lists_trusted(*instances: Instance) -> None:
    """Until every instance's deny-list is loaded and listening: its answers come from memory."""
    deadline = time.monotonic() + 5
    for instance in instances:
        while not instance.state["token_context"].deny_list.trusted:
            assert time.monotonic() < deadline, "the deny-list never loaded"
            await asyncio.sleep(0.01)
