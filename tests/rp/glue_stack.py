"""A real idp served over HTTP, a TokenVerifier of it, and the tokens the glue tests present:
client_credentials tokens with scopes, users' tokens from the real code flow (roles included),
and a resource server registered to introspect. A module may define its own ``idp`` fixture:
``http`` and ``verifier`` then use that one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from idp.clock import FrozenClock
from idp.settings import Settings
from idp_rp import TokenVerifier
from tests.conftest import Served, serving
from tests.factories import PASSWORD, make_client, make_user
from tests.oauth.flow import REDIRECT, Authorization, query_of, sign_in

API = "https://api.example"


@pytest.fixture
async def idp(settings: Settings, clock: FrozenClock, pool: asyncpg.Pool) -> AsyncIterator[Served]:
    """idp on 127.0.0.1 on the test's frozen clock, set to the wall time."""
    clock.set(datetime.now(UTC).replace(microsecond=0))
    async with serving(settings, clock=clock) as served:
        yield served


@pytest.fixture
async def http(idp: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=idp.base_url, timeout=10) as client:
        yield client


@pytest.fixture
async def verifier(
    idp: Served, clock: FrozenClock, http: httpx.AsyncClient
) -> AsyncIterator[TokenVerifier]:
    async with await TokenVerifier.from_issuer(
        idp.base_url, API, clock=clock, http=http
    ) as verifier:
        yield verifier


async def client_token(
    http: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, scope: str
) -> tuple[str, tuple[str, str]]:
    """A client_credentials token for API with ``scope``, and its client's credentials."""
    client, secret = await make_client(pool, settings, audiences=(API,), scopes=("read", "write"))
    answer = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client.client_id, secret),
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"]), (client.client_id, secret)


async def user_token(
    base_url: str,
    pool: asyncpg.Pool,
    settings: Settings,
    email: str,
    *,
    roles: Sequence[str] = (),
    scope: str = "openid read",
) -> str:
    """A token of a new user ``email`` with ``roles``, for API, from the code flow (sign-in
    form, code, PKCE) of a new first-party client."""
    await make_user(pool, email, roles=roles)
    client, secret = await make_client(
        pool,
        settings,
        name="web",
        scopes=("openid", "read"),
        audiences=(API,),
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        first_party=True,
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as browser:
        auth = Authorization(client.client_id, REDIRECT, scope=scope)
        answer = await browser.get(auth.url(resource=API))
        assert answer.status_code == 303, answer.text
        answer = await sign_in(browser, answer.headers["location"], email, PASSWORD)
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
        assert location.startswith(REDIRECT), location
        exchanged = await browser.post(
            "/token",
            auth=(client.client_id, secret),
            data={
                "grant_type": "authorization_code",
                "code": query_of(location)["code"],
                "redirect_uri": REDIRECT,
                "code_verifier": auth.verifier,
                "resource": API,
            },
        )
    assert exchanged.status_code == 200, exchanged.text
    return str(exchanged.json()["access_token"])


async def resource_server(pool: asyncpg.Pool, settings: Settings) -> tuple[str, str]:
    """The API's own client at idp, registered to introspect tokens meant for API."""
    client, secret = await make_client(
        pool, settings, name="api", scopes=(), introspect_audiences=(API,)
    )
    return client.client_id, secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
