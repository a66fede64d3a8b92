"""A parked authorization request goes through its steps in order: a request that needs a new
sign-in (prompt=login, max_age; OIDC Core §3.1.2.1) cannot reach consent, nor a code, before
that sign-in is done for it, by the session that then consents. /consent sends a browser that
is not there yet to the login step (a redirect that changes nothing)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from idp.clock import FrozenClock
from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.factories import make_client, make_user, verify
from tests.oauth.flow import (
    Authorization,
    authorize_code,
    exchange_code,
    hidden_fields,
    query_of,
    sign_in,
)

REDIRECT = "https://app.example/callback"
EMAIL = "alice@example.com"
PASSWORD = "correct horse battery"
# Each asks for a sign-in made for the request, from a browser whose session is 5 minutes old.
NEW_SIGN_IN = [
    pytest.param({"prompt": "login"}, id="prompt-login"),
    pytest.param({"max_age": "0"}, id="max-age-0"),
    pytest.param({"max_age": "60"}, id="max-age-60"),
]


async def clients(pool: asyncpg.Pool, settings: Settings) -> tuple[str, str, str]:
    """A first-party client (to sign in with first) and a third-party one (asks for consent)."""
    scopes = ("openid", "profile", "email")
    common: dict[str, Any] = {"grant_types": ("authorization_code",), "scopes": scopes}
    first, _ = await make_client(
        pool, settings, name="Own App", redirect_uris=(REDIRECT,), first_party=True, **common
    )
    third, secret = await make_client(
        pool, settings, name="Other App", redirect_uris=(REDIRECT,), **common
    )
    return first.client_id, third.client_id, secret


def consent_csrf(app: Instance, browser: httpx.AsyncClient) -> str:
    """What a consent form of this browser carries (any consent page would show it)."""
    cookies = app.state["cookies"]
    return cookies.csrf_token("consent", browser.cookies[cookies.session])


async def id_token_claims(app: Instance, tokens: httpx.Response) -> dict[str, Any]:
    assert tokens.status_code == 200, tokens.text
    jwks = await app.client.get("/jwks.json")
    return verify(tokens.json()["id_token"], jwks.content, ["RS256"])


async def signed_in_earlier(
    app: Instance, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> tuple[str, str]:
    """Alice signed in 5 minutes ago; the third-party client's id and secret."""
    first, third, secret = await clients(pool, settings)
    await make_user(pool, EMAIL, PASSWORD)
    await authorize_code(app.client, Authorization(first, REDIRECT), EMAIL, PASSWORD)
    clock.advance(timedelta(minutes=5))
    return third, secret


@pytest.mark.parametrize("extra", NEW_SIGN_IN)
async def test_a_new_sign_in_cannot_be_skipped_by_going_to_consent(
    extra: dict[str, str],
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    async with app_instance() as app:
        third, _ = await signed_in_earlier(app, pool, settings, clock)
        start = await app.client.get(Authorization(third, REDIRECT).url(**extra))
        assert start.headers["location"].startswith("/login?request=")
        token = query_of(start.headers["location"])["request"]

        page = await app.client.get(f"/consent?request={token}")
        allowed = await app.client.post(
            "/consent",
            data={
                "csrf_token": consent_csrf(app, app.client),
                "request": token,
                "decision": "allow",
            },
        )

    login_step = f"/login?request={token}"
    assert (page.status_code, page.headers.get("location")) == (303, login_step)
    assert (allowed.status_code, allowed.headers.get("location")) == (303, login_step)
    assert await pool.fetchval("SELECT count(*) FROM authorization_codes") == 1  # the first app's
    assert await pool.fetchval("SELECT count(*) FROM consents") == 0
    assert await pool.fetchval("SELECT waiting_for FROM authorization_requests") == "login"


@pytest.mark.parametrize("extra", NEW_SIGN_IN)
async def test_signing_in_for_the_request_then_consenting_gives_the_new_auth_time(
    extra: dict[str, str],
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    async with app_instance() as app:
        third, secret = await signed_in_earlier(app, pool, settings, clock)
        auth = Authorization(third, REDIRECT)
        start = await app.client.get(auth.url(**extra))
        signed_in_at = clock.now()
        after_login = await sign_in(app.client, start.headers["location"], EMAIL, PASSWORD)
        assert after_login.headers["location"] == start.headers["location"].replace(
            "/login", "/consent"
        ), "the same request, now waiting for consent"
        recorded = await pool.fetchrow("SELECT waiting_for, login_sid FROM authorization_requests")
        clock.advance(timedelta(seconds=90))  # reading the consent page takes a while
        page = await app.client.get(after_login.headers["location"])
        allowed = await app.client.post(
            "/consent", data={**hidden_fields(page.text), "decision": "allow"}
        )
        code = query_of(allowed.headers["location"])["code"]
        claims = await id_token_claims(
            app, await exchange_code(app.client, third, secret, code, auth)
        )

    assert claims["auth_time"] == int(signed_in_at.timestamp())
    assert recorded is not None
    assert (recorded["waiting_for"], recorded["login_sid"]) == ("consent", claims["sid"])


async def test_a_sign_in_that_grows_older_than_max_age_on_the_consent_page_is_asked_again(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    async with app_instance() as app:
        third, secret = await signed_in_earlier(app, pool, settings, clock)
        auth = Authorization(third, REDIRECT)
        start = await app.client.get(auth.url(max_age="600"))  # the session is 5 minutes old
        assert start.headers["location"].startswith("/consent?request=")
        page = await app.client.get(start.headers["location"])
        clock.advance(timedelta(minutes=6))
        form = {**hidden_fields(page.text), "decision": "allow"}
        too_old = await app.client.post("/consent", data=form)
        assert too_old.headers["location"] == start.headers["location"].replace(
            "/consent", "/login"
        )
        signed_in_at = clock.now()
        after_login = await sign_in(app.client, too_old.headers["location"], EMAIL, PASSWORD)
        page = await app.client.get(after_login.headers["location"])
        allowed = await app.client.post(
            "/consent", data={**hidden_fields(page.text), "decision": "allow"}
        )
        code = query_of(allowed.headers["location"])["code"]
        claims = await id_token_claims(
            app, await exchange_code(app.client, third, secret, code, auth)
        )

    assert claims["auth_time"] == int(signed_in_at.timestamp())


async def test_consent_belongs_to_the_session_that_signed_in_for_the_request(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    """Another browser of the same user, signed in before, cannot consent to a request that
    a prompt=login sign-in was made for."""
    async with app_instance() as app, app_instance() as fresh_browser:
        third, _ = await signed_in_earlier(app, pool, settings, clock)  # the other browser
        fresh = fresh_browser.client
        start = await fresh.get(Authorization(third, REDIRECT).url(prompt="login"))
        after_login = await sign_in(fresh, start.headers["location"], EMAIL, PASSWORD)
        token = query_of(after_login.headers["location"])["request"]
        page = await app.client.get(f"/consent?request={token}")
        allowed = await app.client.post(
            "/consent",
            data={
                "csrf_token": consent_csrf(app, app.client),
                "request": token,
                "decision": "allow",
            },
        )

    login_step = f"/login?request={token}"
    assert [page.headers.get("location"), allowed.headers.get("location")] == [login_step] * 2
    assert await pool.fetchval("SELECT count(*) FROM consents") == 0


async def test_a_parked_request_yields_one_code_when_its_consent_is_sent_at_once_many_times(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    async with app_instance() as app:
        third, _ = await signed_in_earlier(app, pool, settings, clock)
        start = await app.client.get(Authorization(third, REDIRECT).url())
        page = await app.client.get(start.headers["location"])
        form = {**hidden_fields(page.text), "decision": "allow"}
        answers = await asyncio.gather(*(app.client.post("/consent", data=form) for _ in range(5)))

    codes = [a for a in answers if "code" in query_of(a.headers.get("location", ""))]
    assert len(codes) == 1
    assert sorted(a.status_code for a in answers) == [303, 400, 400, 400, 400]
    issued = "SELECT count(*) FROM authorization_codes WHERE client_id = $1"
    assert await pool.fetchval(issued, third) == 1


async def test_prompt_none_still_answers_without_any_page(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    async with app_instance() as app:
        third, _ = await signed_in_earlier(app, pool, settings, clock)
        needs_consent = await app.client.get(Authorization(third, REDIRECT).url(prompt="none"))
        app.client.cookies.clear()
        needs_login = await app.client.get(Authorization(third, REDIRECT).url(prompt="none"))

    assert query_of(needs_consent.headers["location"])["error"] == "consent_required"
    assert query_of(needs_login.headers["location"])["error"] == "login_required"
    assert await pool.fetchval("SELECT count(*) FROM authorization_requests") == 0
