"""The demo client of ``idp serve --demo`` (``/demo/start``, ``/demo/callback``): a real random
PKCE verifier kept in a short-lived cookie of the browser that started, nothing derived from
``state``."""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from idp.clock import FrozenClock
from idp.demo import DemoCredentials, seed
from idp.oauth.pkce import s256
from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.oauth.flow import hidden_fields, query_of

pytestmark = pytest.mark.usefixtures("real_time")

FLOW_COOKIE = "idp_demo_flow"


@pytest.fixture
async def demo(pool: asyncpg.Pool, settings: Settings, clock: FrozenClock) -> DemoCredentials:
    seeded = await seed(pool, settings, clock.now())
    assert seeded is not None
    return seeded


async def to_callback(client: httpx.AsyncClient, url: str, password: str) -> str:
    """A newcomer opens the printed URL and signs in: the callback URL the browser is sent to."""
    response = await client.get(url)
    while response.headers["location"].split("?")[0] != "/login":
        assert response.status_code == 303, response.text
        response = await client.get(response.headers["location"])
    page = await client.get(response.headers["location"])
    form = {**hidden_fields(page.text), "email": "demo@example.com", "password": password}
    callback = await client.post("/login", data=form)
    assert "/demo/callback?" in callback.headers["location"], callback.text
    return str(callback.headers["location"])


def flow_cookie(response: httpx.Response) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    assert FLOW_COOKIE in cookie, response.headers
    return cookie


async def test_the_demo_signs_in_end_to_end_with_a_flow_cookie(
    app_instance: InstanceFactory, demo: DemoCredentials
) -> None:
    assert demo.authorization_url == "http://idp.test/demo/start", "what idp serve prints"
    async with app_instance(demo=True) as app:
        start = await app.client.get(demo.authorization_url)
        assert start.status_code == 303
        assert start.headers["location"].startswith("http://idp.test/authorize?")
        assert start.headers["cache-control"] == "no-store"
        morsel = flow_cookie(start)[FLOW_COOKIE]
        assert morsel["httponly"]
        assert morsel["samesite"].lower() == "lax"
        assert morsel["path"] == "/demo/callback"
        assert 0 < int(morsel["max-age"]) <= 600
        assert not morsel["secure"], "http issuer: Secure only on https"

        callback = await to_callback(app.client, demo.authorization_url, demo.password)
        page = await app.client.get(callback)
        assert page.status_code == 200, page.text
        assert "You are signed in" in page.text
        assert "demo@example.com" in page.text
        assert "&#34;email_verified&#34;: true" in page.text  # the demo user is an operator's user
        assert FLOW_COOKIE not in app.client.cookies, "one callback per flow"
        again = await app.client.get(callback)
    assert again.status_code == 400, "the flow is over"


async def test_the_challenge_comes_from_a_random_verifier_not_from_state(
    app_instance: InstanceFactory, demo: DemoCredentials
) -> None:
    async with app_instance(demo=True) as app:
        starts = [await app.client.get(demo.authorization_url) for _ in range(2)]
    challenges = set()
    for start in starts:
        query = query_of(start.headers["location"])
        state, nonce, verifier = flow_cookie(start)[FLOW_COOKIE].value.split(".")
        assert (state, nonce) == (query["state"], query["nonce"])
        assert len(verifier) >= 43
        assert verifier not in (state, nonce)
        assert query["code_challenge"] == s256(verifier)
        challenges.add(query["code_challenge"])
    assert len(challenges) == 2


async def finish_with(app: Instance, callback: str, cookie: str | None) -> httpx.Response:
    app.client.cookies.delete(FLOW_COOKIE)
    if cookie is not None:
        app.client.cookies.set(FLOW_COOKIE, cookie, domain="idp.test", path="/demo/callback")
    return await app.client.get(callback)


async def test_a_callback_without_the_flow_cookie_fails_with_a_readable_page(
    app_instance: InstanceFactory, demo: DemoCredentials
) -> None:
    """Whoever holds the code and the state (both in the URL) cannot finish the sign-in."""
    async with app_instance(demo=True) as app:
        callback = await to_callback(app.client, demo.authorization_url, demo.password)
        stolen = await finish_with(app, callback, None)
    assert stolen.status_code == 400
    assert "This sign-in did not start here" in stolen.text
    assert "/demo/start" in stolen.text
    assert "You are signed in" not in stolen.text


async def test_the_state_alone_does_not_make_a_working_verifier(
    app_instance: InstanceFactory, demo: DemoCredentials
) -> None:
    async with app_instance(demo=True) as app:
        callback = await to_callback(app.client, demo.authorization_url, demo.password)
        state, nonce = query_of(callback)["state"], app.client.cookies[FLOW_COOKIE].split(".")[1]
        guessed = await finish_with(app, callback, f"{state}.{nonce}.{'x' * 43}")
    assert guessed.status_code == 400
    assert "The code exchange failed" in guessed.text


async def test_a_callback_with_another_sign_ins_state_is_refused(
    app_instance: InstanceFactory, demo: DemoCredentials
) -> None:
    async with app_instance(demo=True) as app:
        callback = await to_callback(app.client, demo.authorization_url, demo.password)
        other = await app.client.get(demo.authorization_url)  # this browser starts again
        mixed = await app.client.get(callback)
    assert urlsplit(other.headers["location"]).path == "/authorize"
    assert mixed.status_code == 400
    assert "This is not the sign-in this browser started" in mixed.text
