"""idp_rp.bff (the backend-for-frontend kit) against a real idp over HTTP: sign-in through the
hosted login page, cookies, /me, CSRF, the API proxy, transparent refresh and logout.

The BFF is served in process (httpx ASGITransport: it is the app under test); idp and the API
behind the proxy run on uvicorn. idp, the BFF and the API share one frozen clock, so an access
token expires when the test says so.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from idp.clock import FrozenClock
from idp.settings import Settings
from idp_rp.bff import BackendForFrontend, BffConfig, MemorySessionStore
from idp_rp.bff.sealing import Sealer
from tests.conftest import Served, free_socket, serving, uvicorn_serving
from tests.factories import PASSWORD, make_client, make_user
from tests.hosted_login import walk_hosted_login
from tests.rp.bff_stack import (
    API,
    Browser,
    echo_api,
    family_revoked,
    refresh_generation,
    set_cookies,
)

BFF = "http://127.0.0.1:8400"  # served through ASGITransport: no port is opened
HTTPS_BFF = "https://app.example"
ACCESS_TTL = timedelta(minutes=5)
EMAIL = "alice@example.com"
TOKEN_COOKIES = ("bff_session", "bff_refresh", "bff_id")


@dataclass
class Stack:
    idp: Served
    idp_http: httpx.AsyncClient
    pool: asyncpg.Pool
    clock: FrozenClock
    client_id: str
    secret: str
    api_url: str
    cookie_key: bytes

    def config(self, base_url: str = BFF) -> BffConfig:
        return BffConfig(
            issuer=self.idp.base_url,
            client_id=self.client_id,
            client_secret=self.secret,
            base_url=base_url,
            cookie_key=self.cookie_key,
            api_upstream=self.api_url,
        )


@pytest.fixture
async def stack(settings: Settings, clock: FrozenClock, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    clock.set(datetime.now(UTC).replace(microsecond=0))
    client, secret = await make_client(
        pool,
        settings,
        name="bff",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(f"{BFF}/auth/callback", f"{HTTPS_BFF}/auth/callback"),
        scopes=("openid", "profile", "email", "roles"),
        audiences=(API,),
        first_party=True,
        access_token_ttl=ACCESS_TTL,
        post_logout_redirect_uris=(f"{BFF}/", f"{HTTPS_BFF}/"),
    )
    await make_user(pool, EMAIL, roles=("admin",))
    async with (
        serving(replace(settings, access_token_ttl=ACCESS_TTL), clock=clock) as idp,
        httpx.AsyncClient(base_url=idp.base_url, timeout=10) as idp_http,
        uvicorn_serving(echo_api(idp.base_url, clock, idp_http), free_socket()) as api_url,
    ):
        yield Stack(
            idp, idp_http, pool, clock, client.client_id, secret, api_url, secrets.token_bytes(32)
        )


@asynccontextmanager
async def bff_browser(
    stack: Stack, base_url: str = BFF, *, store: MemorySessionStore | None = None
) -> AsyncIterator[Browser]:
    bff = BackendForFrontend(stack.config(base_url), store=store, clock=stack.clock)
    app = Starlette(routes=bff.routes)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield Browser(http)
    finally:
        await bff.aclose()


@asynccontextmanager
async def idp_down(stack: Stack, browser: Browser) -> AsyncIterator[Browser]:
    """The same BFF (same cookie key, same cookies) with idp unreachable: its issuer is a
    bound port nobody listens on (connection refused)."""
    closed = free_socket()
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    bff = BackendForFrontend(replace(stack.config(), issuer=dead), clock=stack.clock)
    transport = httpx.ASGITransport(app=Starlette(routes=bff.routes))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BFF) as http:
            yield Browser(http, browser.jar)
    finally:
        await bff.aclose()
        closed.close()


async def sign_in(stack: Stack, browser: Browser, return_to: str | None = None) -> httpx.Response:
    """/auth/login, idp's hosted login, and back to /auth/callback: the callback's answer."""
    params = {} if return_to is None else {"return_to": return_to}
    started = await browser.request("GET", "/auth/login", params=params)
    assert started.status_code == 302, started.text
    redirect_uri = str(browser.http.base_url).rstrip("/") + "/auth/callback"
    back = await walk_hosted_login(
        stack.idp_http, started.headers["location"], redirect_uri, EMAIL, PASSWORD
    )
    parts = urlsplit(back)
    return await browser.request("GET", f"{parts.path}?{parts.query}")


async def test_sign_in_sets_httponly_secure_lax_token_cookies_and_a_readable_xsrf_cookie(
    stack: Stack,
) -> None:
    """RFC 6265bis §4.1.2: tokens in HttpOnly Secure SameSite=Lax cookies, Path=/, no Domain;
    only XSRF-TOKEN is readable by the page's JavaScript."""
    async with bff_browser(stack) as browser:
        answer = await sign_in(stack, browser)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/"
        cookies = set_cookies(answer)
        for name in TOKEN_COOKIES:
            attributes = cookies[name].attributes
            assert {"httponly", "secure"} <= attributes.keys(), name
            assert attributes["samesite"].lower() == "lax"
            assert attributes["path"] == "/"
            assert "domain" not in attributes
        xsrf = cookies["XSRF-TOKEN"].attributes
        assert "httponly" not in xsrf
        assert "secure" in xsrf
        assert cookies["bff_login"].removed  # the pending sign-in is over
        # Nothing of the tokens is in clear text in any cookie.
        assert all(value.count(".") == 0 for value in browser.jar.values())


async def test_me_answers_the_user_after_sign_in_and_401_without_a_session(
    stack: Stack,
) -> None:
    async with bff_browser(stack) as browser:
        refused = await browser.request("GET", "/me")
        assert refused.status_code == 401
        assert refused.json()["error"] == "login_required"
        await sign_in(stack, browser)
        me = await browser.request("GET", "/me")
        assert me.status_code == 200, me.text
        user = me.json()
        assert user["email"] == EMAIL
        assert user["roles"] == ["admin"]
        assert "nonce" not in user
        assert "at_hash" not in user


async def test_an_unsafe_request_needs_the_xsrf_header_matching_the_cookie(stack: Stack) -> None:
    """Double submit: POST through the proxy without X-XSRF-TOKEN, or with another value, is
    403 and never reaches the API; with it the API gets the bearer token, not the cookies."""
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        missing = await browser.request("POST", "/api/echo", content=b"hello")
        assert missing.status_code == 403, missing.text
        assert missing.json()["error"] == "xsrf_failed"
        wrong = await browser.request(
            "POST", "/api/echo", content=b"hello", headers={"X-XSRF-TOKEN": "guess"}
        )
        assert wrong.status_code == 403
        logout = await browser.request("POST", "/auth/logout")
        assert logout.status_code == 403  # the BFF's own unsafe routes too
        sent = await browser.request("POST", "/api/echo", content=b"hello", headers=browser.xsrf())
        assert sent.status_code == 200, sent.text
        echoed = sent.json()
        assert echoed["method"] == "POST"
        assert echoed["body"] == "hello"
        assert echoed["cookie"] is None
        assert echoed["xsrf"] is None
        assert (await browser.request("GET", "/api/echo")).status_code == 200  # GET is safe


async def test_the_proxy_forwards_only_below_the_api_prefix(stack: Stack) -> None:
    """A dot segment would take the user's token to any route of the upstream (RFC 3986
    §5.2.4 removes it there): refused."""
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        for path in ("/api/%2e%2e/jwks.json", "/api/%2e/echo", "/api/x/%2E%2E/%2e%2e/secret"):
            refused = await browser.request("GET", path)
            assert refused.status_code == 400, path
            assert refused.json()["error"] == "invalid_request"
        assert (await browser.request("GET", "/api/echo?x=1")).status_code == 200


async def test_a_callback_with_another_state_is_refused(stack: Stack) -> None:
    """RFC 6749 §10.12: the state must be the one this browser's sign-in sent."""
    async with bff_browser(stack) as browser:
        started = await browser.request("GET", "/auth/login")
        back = await walk_hosted_login(
            stack.idp_http, started.headers["location"], f"{BFF}/auth/callback", EMAIL, PASSWORD
        )
        query = {key: values[0] for key, values in parse_qs(urlsplit(back).query).items()}
        forged = await browser.request(
            "GET", "/auth/callback", params={**query, "state": query["state"][:-2] + "xx"}
        )
        assert forged.status_code == 400
        assert "state" in forged.json()["error_description"]
        assert not set(TOKEN_COOKIES) & set(browser.jar)
        without_pending = await browser.request("GET", "/auth/callback", params=query, jar={})
        assert without_pending.status_code == 400


async def test_return_to_must_be_a_path_on_this_site(stack: Stack) -> None:
    async with bff_browser(stack) as browser:
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            refused = await browser.request("GET", "/auth/login", params={"return_to": target})
            assert refused.status_code == 400, target
        answer = await sign_in(stack, browser, return_to="/reports?year=2026")
        assert answer.headers["location"] == "/reports?year=2026"


async def test_an_expired_access_token_is_refreshed_transparently(stack: Stack) -> None:
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        before = (await browser.request("GET", "/api/echo")).json()["jti"]
        stack.clock.advance(ACCESS_TTL + timedelta(seconds=1))
        me = await browser.request("GET", "/me")
        assert me.status_code == 200, me.text
        assert set(TOKEN_COOKIES) <= set(set_cookies(me))  # the new tokens go to the browser
        assert await refresh_generation(stack.pool, stack.client_id) == 1
        after = await browser.request("GET", "/api/echo")
        assert after.status_code == 200, after.text
        assert after.json()["jti"] != before
        assert await refresh_generation(stack.pool, stack.client_id) == 1


async def test_an_access_token_about_to_expire_is_refreshed_before_use(stack: Stack) -> None:
    """Within refresh_skew (30 s) of its expiry the token would die on its way to the API."""
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        stack.clock.advance(ACCESS_TTL - timedelta(seconds=40))
        assert (await browser.request("GET", "/me")).status_code == 200
        assert await refresh_generation(stack.pool, stack.client_id) == 0
        stack.clock.advance(timedelta(seconds=15))
        assert (await browser.request("GET", "/me")).status_code == 200
        assert await refresh_generation(stack.pool, stack.client_id) == 1


async def test_twenty_concurrent_calls_at_expiry_make_exactly_one_refresh_at_idp(
    stack: Stack,
) -> None:
    """All twenty carry the same refresh token: a second refresh with it would be reuse
    (RFC 9700 §4.14.2) and idp would revoke the family; they share one and all succeed."""
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        old = dict(browser.jar)
        stack.clock.advance(ACCESS_TTL + timedelta(seconds=1))
        answers = await asyncio.gather(
            *(browser.request("GET", "/api/echo", jar=old) for _ in range(20))
        )
        assert [answer.status_code for answer in answers] == [200] * 20
        assert len({answer.json()["jti"] for answer in answers}) == 1
        assert all("bff_session" in set_cookies(answer) for answer in answers)
        assert await refresh_generation(stack.pool, stack.client_id) == 1
        assert not await family_revoked(stack.pool, stack.client_id)
        # A straggler with the old cookies, after the refresh ended, gets the same tokens.
        late = await browser.request("GET", "/api/echo", jar=old)
        assert late.json()["jti"] == answers[0].json()["jti"]
        assert await refresh_generation(stack.pool, stack.client_id) == 1


async def test_a_refresh_idp_refuses_clears_the_cookies_and_answers_401(stack: Stack) -> None:
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        sealed = Sealer(stack.cookie_key).unseal("bff_refresh", browser.jar["bff_refresh"])
        assert sealed is not None
        revoked = await stack.idp_http.post(
            "/revoke", data={"token": sealed["rt"]}, auth=(stack.client_id, stack.secret)
        )
        assert revoked.status_code == 200
        stack.clock.advance(ACCESS_TTL + timedelta(seconds=1))
        refused = await browser.request("GET", "/me")
        assert refused.status_code == 401, refused.text
        cleared = set_cookies(refused)
        assert all(cleared[name].removed for name in (*TOKEN_COOKIES, "XSRF-TOKEN"))
        assert (await browser.request("GET", "/api/echo")).status_code == 401


async def test_logout_answers_idps_end_session_url_and_following_it_ends_the_idp_session(
    stack: Stack,
) -> None:
    """OIDC RP-Initiated Logout §2: id_token_hint and the registered post_logout_redirect_uri;
    idp ends its session without asking, and the refresh token is revoked (RFC 7009)."""
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        answer = await browser.request("POST", "/auth/logout", headers=browser.xsrf())
        assert answer.status_code == 200, answer.text
        assert all(set_cookies(answer)[name].removed for name in TOKEN_COOKIES)
        url = answer.json()["logout_url"]
        query = parse_qs(urlsplit(url).query)
        assert url.startswith(f"{stack.idp.base_url}/logout?")
        assert query["post_logout_redirect_uri"] == [f"{BFF}/"]
        assert "id_token_hint" in query
        assert await family_revoked(stack.pool, stack.client_id)
        assert (await browser.request("GET", "/me")).status_code == 401
        ended = await stack.idp_http.get(url)
        assert ended.status_code in (302, 303), ended.text
        assert ended.headers["location"] == f"{BFF}/"
        again = await browser.request("GET", "/auth/login")
        at_idp = await stack.idp_http.get(again.headers["location"])
        assert urlsplit(at_idp.headers["location"]).path == "/login"  # signed out of idp too


async def test_cookies_take_the_host_prefix_on_an_https_origin(stack: Stack) -> None:
    """RFC 6265bis §4.1.3.2: ``__Host-`` (Secure, Path=/, no Domain) on https; XSRF-TOKEN
    keeps the name Angular reads."""
    async with bff_browser(stack, HTTPS_BFF) as browser:
        answer = await sign_in(stack, browser)
        assert answer.status_code == 303, answer.text
        names = set(set_cookies(answer))
        assert {f"__Host-{name}" for name in TOKEN_COOKIES} | {"XSRF-TOKEN"} <= names
        assert "__Host-bff_login" in names
        assert not {name for name in names if name.startswith("bff_")}
        assert (await browser.request("GET", "/me")).status_code == 200


async def test_a_server_side_store_keeps_the_tokens_out_of_the_browser(stack: Stack) -> None:
    store = MemorySessionStore(stack.clock)
    async with bff_browser(stack, store=store) as browser:
        await sign_in(stack, browser)
        assert set(browser.jar) == {"bff_session", "XSRF-TOKEN"}
        assert len(browser.jar["bff_session"]) < 200  # an id, not tokens
        assert (await browser.request("GET", "/me")).json()["email"] == EMAIL
        stack.clock.advance(ACCESS_TTL + timedelta(seconds=1))
        assert (await browser.request("GET", "/api/echo")).status_code == 200
        assert await refresh_generation(stack.pool, stack.client_id) == 1
        logout = await browser.request("POST", "/auth/logout", headers=browser.xsrf())
        assert logout.status_code == 200
        assert (await browser.request("GET", "/me")).status_code == 401


MANY_ROLES = [f"role-{number:03d}-of-a-large-organisation" for number in range(80)]


async def test_tokens_too_large_for_a_cookie_are_a_clear_502_never_a_dropped_cookie(
    stack: Stack,
) -> None:
    """RFC 6265bis §5.4: a browser ignores a cookie over 4096 octets (name and value), and the
    user would come back signed out with no word why. Eighty roles make idp's tokens too long:
    the sign-in answers session_too_large, sets no token cookie, and a server-side store
    works for the same user."""
    await stack.pool.execute("UPDATE users SET roles = $1 WHERE email = $2", MANY_ROLES, EMAIL)
    async with bff_browser(stack) as browser:
        answer = await sign_in(stack, browser)
        assert answer.status_code == 502, answer.text
        assert answer.json()["error"] == "session_too_large"
        assert "server-side" in answer.json()["error_description"]
        assert not set(TOKEN_COOKIES) & set(set_cookies(answer))
        assert await family_revoked(stack.pool, stack.client_id)
    async with bff_browser(stack, store=MemorySessionStore(stack.clock)) as browser:
        assert (await sign_in(stack, browser)).status_code == 303
        assert (await browser.request("GET", "/me")).json()["roles"] == MANY_ROLES


async def test_tokens_grown_too_large_at_a_refresh_end_the_session_before_the_request_runs(
    stack: Stack,
) -> None:
    """The roles grew between sign-in and refresh: the POST is not forwarded (its answer could
    not carry the session), the answer is session_too_large and the cookies are cleared."""
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        await stack.pool.execute("UPDATE users SET roles = $1 WHERE email = $2", MANY_ROLES, EMAIL)
        stack.clock.advance(ACCESS_TTL + timedelta(seconds=1))
        answer = await browser.request(
            "POST", "/api/echo", content=b"hello", headers=browser.xsrf()
        )
        assert answer.status_code == 502, answer.text
        assert answer.json()["error"] == "session_too_large"
        cleared = set_cookies(answer)
        assert all(cleared[name].removed for name in TOKEN_COOKIES)


async def test_the_proxy_forwards_the_path_still_encoded_and_refuses_what_cannot_go_on(
    stack: Stack,
) -> None:
    """The upstream gets the path as the browser sent it (RFC 3986 §2.4: decoding it would
    change its meaning); a NUL, or a dot segment hidden behind an encoded slash, is a 400,
    never an exception (500)."""
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        sent = await browser.request("GET", "/api/a%20b%2Fc?q=%00&r=a+b")
        assert sent.status_code == 200, sent.text
        assert sent.json()["query"] == "q=%00&r=a+b"
        for path in ("/api/echo%00", "/api/echo%01%7f", "/api/x%2F..%2F..%2Fkeys"):
            refused = await browser.request("GET", path)
            assert refused.status_code == 400, path
            assert refused.json()["error"] == "invalid_request"


async def test_the_proxy_refuses_a_body_over_the_limit_without_forwarding_it(
    stack: Stack,
) -> None:
    """The body is read into memory before it goes on: bounded by max_body_bytes (1 MiB by
    default), declared or streamed (chunked, no Content-Length)."""
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        big = b"x" * (1_048_576 + 1)
        declared = await browser.request("POST", "/api/echo", content=big, headers=browser.xsrf())
        assert declared.status_code == 413, declared.text[:200]
        assert declared.json()["error"] == "request_too_large"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(17):
                yield b"y" * 65_536

        streamed = await browser.request(
            "POST", "/api/echo", content=chunks(), headers=browser.xsrf()
        )
        assert streamed.status_code == 413, streamed.text[:200]
        fits = await browser.request(
            "POST", "/api/echo", content=b"z" * 1_048_576, headers=browser.xsrf()
        )
        assert fits.status_code == 200
        assert len(fits.json()["body"]) == 1_048_576


async def test_idp_down_is_a_clean_502_at_login_callback_and_refresh(stack: Stack) -> None:
    async with bff_browser(stack) as browser:
        started = await browser.request("GET", "/auth/login")
        back = await walk_hosted_login(
            stack.idp_http, started.headers["location"], f"{BFF}/auth/callback", EMAIL, PASSWORD
        )
        async with idp_down(stack, browser) as down:
            assert (await down.request("GET", "/auth/login")).status_code == 502
            parts = urlsplit(back)
            callback = await down.request("GET", f"{parts.path}?{parts.query}")
            assert callback.status_code == 502, callback.text
            assert callback.json()["error"] == "idp_unavailable"
        await sign_in(stack, browser)
        stack.clock.advance(ACCESS_TTL + timedelta(seconds=1))
        async with idp_down(stack, browser) as down:
            refresh = await down.request("GET", "/api/echo")
            assert refresh.status_code == 502, refresh.text
            assert refresh.json()["error"] == "idp_unavailable"
        assert (await browser.request("GET", "/me")).status_code == 200  # idp is back


async def test_logout_with_idp_down_still_ends_the_session_here(stack: Stack) -> None:
    """The user asked to sign out: the cookies go even when idp's end-session URL cannot be
    had (502, saying so)."""
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        async with idp_down(stack, browser) as down:
            answer = await down.request("POST", "/auth/logout", headers=browser.xsrf())
            assert answer.status_code == 502, answer.text
            assert "signed out here" in answer.json()["error_description"]
            cleared = set_cookies(answer)
            assert all(cleared[name].removed for name in (*TOKEN_COOKIES, "XSRF-TOKEN"))
        assert (await browser.request("GET", "/me")).status_code == 401


async def test_a_logout_carrying_no_cookie_clears_none(stack: Stack) -> None:
    """A cross-site form POST to /auth/logout carries no SameSite=Lax cookie, but a browser
    applies the Set-Cookie of a top-level navigation's answer (RFC 6265bis §5.7): clearing
    cookies for it would let any site sign the user out. Nothing is cleared, and the signed-in
    browser stays signed in."""
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        forged = await browser.request("POST", "/auth/logout", jar={})
        assert forged.status_code == 200, forged.text
        assert "id_token_hint" not in forged.json()["logout_url"]
        assert not forged.headers.get_list("set-cookie")
        assert (await browser.request("GET", "/me")).status_code == 200


async def test_a_pending_sign_in_outlives_its_login_ttl_nowhere(stack: Stack) -> None:
    """The pending sign-in cookie's Max-Age binds only the browser: a copy replayed after
    login_ttl (10 minutes) is refused by the BFF itself."""
    async with bff_browser(stack) as browser:
        started = await browser.request("GET", "/auth/login")
        pending = dict(browser.jar)
        back = await walk_hosted_login(
            stack.idp_http, started.headers["location"], f"{BFF}/auth/callback", EMAIL, PASSWORD
        )
        stack.clock.advance(timedelta(minutes=10))
        parts = urlsplit(back)
        late = await browser.request("GET", f"{parts.path}?{parts.query}", jar=pending)
        assert late.status_code == 400, late.text
        assert "too long" in late.json()["error_description"]
        assert set_cookies(late)["bff_login"].removed


async def test_a_replayed_callback_is_a_400_not_an_idp_failure(stack: Stack) -> None:
    """The same code twice (RFC 6749 §4.1.2: single use), with the pending cookie copied:
    idp refuses it, and that is the browser's doing (400 invalid_grant), not a 502."""
    async with bff_browser(stack) as browser:
        started = await browser.request("GET", "/auth/login")
        pending = dict(browser.jar)
        back = await walk_hosted_login(
            stack.idp_http, started.headers["location"], f"{BFF}/auth/callback", EMAIL, PASSWORD
        )
        parts = urlsplit(back)
        first = await browser.request("GET", f"{parts.path}?{parts.query}", jar=pending)
        assert first.status_code == 303, first.text
        again = await browser.request("GET", f"{parts.path}?{parts.query}", jar=pending)
        assert again.status_code == 400, again.text
        assert again.json()["error"] == "invalid_grant"


async def test_a_discovery_document_without_its_endpoints_is_a_502() -> None:
    """OpenID Connect Discovery 1.0 §3: authorization_endpoint, token_endpoint and jwks_uri
    are REQUIRED; a provider without them is unusable (502), not a KeyError (500)."""
    listening = free_socket()
    issuer = f"http://127.0.0.1:{listening.getsockname()[1]}"

    async def discovery(_: Request) -> JSONResponse:
        return JSONResponse({"issuer": issuer, "authorization_endpoint": f"{issuer}/authorize"})

    provider = Starlette(routes=[Route("/.well-known/openid-configuration", discovery)])
    async with uvicorn_serving(provider, listening):
        bff = BackendForFrontend(
            BffConfig(
                issuer=issuer,
                client_id="app",
                client_secret="secret",
                base_url=BFF,
                cookie_key=secrets.token_bytes(32),
            )
        )
        transport = httpx.ASGITransport(app=Starlette(routes=bff.routes))
        async with httpx.AsyncClient(transport=transport, base_url=BFF) as http:
            answer = await http.get("/auth/login")
        await bff.aclose()
    assert answer.status_code == 502, answer.text
    assert "token_endpoint" in answer.json()["error_description"]


async def test_a_refreshed_id_token_the_bff_refuses_ends_the_session(stack: Stack) -> None:
    """idp rotated the refresh token for an ID token this BFF does not accept (here: its
    algorithm, after a configuration change): the session ends (401, cookies cleared) and
    the unused new refresh token is revoked, rather than a 502 that the next request would
    retry with the spent token (reuse at idp, RFC 9700 §4.14.2)."""
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
    stack.clock.advance(ACCESS_TTL + timedelta(seconds=1))
    bff = BackendForFrontend(replace(stack.config(), algorithms=("PS256",)), clock=stack.clock)
    transport = httpx.ASGITransport(app=Starlette(routes=bff.routes))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BFF) as http:
            refused = await Browser(http, browser.jar).request("GET", "/me")
    finally:
        await bff.aclose()
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "login_required"
    cleared = set_cookies(refused)
    assert all(cleared[name].removed for name in (*TOKEN_COOKIES, "XSRF-TOKEN"))
    assert await refresh_generation(stack.pool, stack.client_id) == 1
    assert await family_revoked(stack.pool, stack.client_id)


async def test_a_proxied_answer_is_not_for_shared_caches_unless_the_api_says_so(
    stack: Stack,
) -> None:
    """It is one user's, got with their token (RFC 9111 §5.2.2.5 no-store): a CDN in front of
    the BFF must not hand it to another user. The echo API sends no Cache-Control."""
    async with bff_browser(stack) as browser:
        await sign_in(stack, browser)
        answer = await browser.request("GET", "/api/echo")
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"


async def test_a_bff_mounted_below_a_path_forwards_below_the_api_prefix(stack: Stack) -> None:
    """``Mount("/app", routes=bff.routes)`` with base_url ``.../app``: /app/api/echo goes to
    the upstream's /api/echo (the mount is this site's, not the API's)."""
    base = f"{BFF}/app"
    await stack.pool.execute(
        "UPDATE clients SET redirect_uris = redirect_uris || $1::text WHERE client_id = $2",
        f"{base}/auth/callback",
        stack.client_id,
    )
    bff = BackendForFrontend(stack.config(base), clock=stack.clock)
    transport = httpx.ASGITransport(app=Starlette(routes=[Mount("/app", routes=bff.routes)]))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BFF) as http:
            browser = Browser(http)
            started = await browser.request("GET", "/app/auth/login")
            back = await walk_hosted_login(
                stack.idp_http,
                started.headers["location"],
                f"{base}/auth/callback",
                EMAIL,
                PASSWORD,
            )
            parts = urlsplit(back)
            signed_in = await browser.request("GET", f"{parts.path}?{parts.query}")
            assert signed_in.status_code == 303, signed_in.text
            answer = await browser.request("GET", "/app/api/echo?x=1")
            assert answer.status_code == 200, answer.text
            assert answer.json()["path"] == "/api/echo"
            assert answer.json()["query"] == "x=1"
    finally:
        await bff.aclose()


@pytest.mark.parametrize("where", ["cookies", "server"])
async def test_signing_in_over_a_session_ends_the_previous_one(stack: Stack, where: str) -> None:
    """A second sign-in in the same browser replaces the session: the old refresh token is
    revoked at idp (RFC 7009) and the old cookies, replayed, are no session any more."""
    store = MemorySessionStore(stack.clock) if where == "server" else None
    async with bff_browser(stack, store=store) as browser:
        await sign_in(stack, browser)
        old = dict(browser.jar)
        await sign_in(stack, browser)
        revoked = await stack.pool.fetchval(
            "SELECT count(*) FROM refresh_families WHERE client_id = $1 AND revoked_at IS NOT NULL",
            stack.client_id,
        )
        assert revoked == 1
        assert (await browser.request("GET", "/me")).status_code == 200
        stack.clock.advance(ACCESS_TTL + timedelta(seconds=1))
        replayed = await browser.request("GET", "/me", jar=old)
        assert replayed.status_code == 401, replayed.text
