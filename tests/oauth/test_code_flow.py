"""The authorization code flow end to end over HTTP: authorize, sign in, exchange, userinfo."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta

import asyncpg
import jwt as pyjwt
import pytest
from starlette.responses import Response

from idp.clock import FrozenClock
from idp.oauth.id_token import at_hash
from idp.settings import Settings
from idp.web.security import Cookies
from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error, make_client, make_user
from tests.oauth.flow import (
    Authorization,
    authorize_code,
    exchange_code,
    hidden_fields,
    query_of,
    sign_in,
)

pytestmark = pytest.mark.usefixtures("real_time")  # PyJWT checks exp and iat against the real clock

REDIRECT = "https://app.example/callback"
PASSWORD = "correct horse battery"


async def registered(
    pool: asyncpg.Pool, settings: Settings, *, first_party: bool = True, public: bool = False
) -> tuple[str, str]:
    client, secret = await make_client(
        pool,
        settings,
        name="Example App",
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "profile", "email", "roles", "read"),
        audiences=("https://api.example",),
        first_party=first_party,
        public=public,
    )
    return client.client_id, secret


async def test_code_flow_gives_verifiable_access_and_id_tokens_and_userinfo(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, secret = await registered(pool, settings)
    user = await make_user(pool, roles=("admin",))
    auth = Authorization(client_id, REDIRECT, scope="openid profile email roles")
    async with app_instance() as app:
        code = await authorize_code(app.client, auth, user.email, PASSWORD)
        tokens = await exchange_code(app.client, client_id, secret, code, auth)
        assert tokens.status_code == 200, tokens.text
        assert tokens.headers["cache-control"] == "no-store"
        body = tokens.json()
        jwks = pyjwt.PyJWKSet.from_dict((await app.client.get("/jwks.json")).json())

        access_header = pyjwt.get_unverified_header(body["access_token"])
        assert access_header["typ"] == "at+jwt"
        key = jwks[access_header["kid"]].key
        access = pyjwt.decode(
            body["access_token"], key, algorithms=["RS256"],
            audience="https://api.example", issuer=settings.issuer,
        )  # fmt: skip
        assert access["sub"] == str(user.id)
        assert access["client_id"] == client_id
        assert access["roles"] == ["admin"]
        assert settings.issuer in access["aud"], "openid adds the issuer for /userinfo"

        id_token = pyjwt.decode(
            body["id_token"], key, algorithms=["RS256"], audience=client_id,
            issuer=settings.issuer,
        )  # fmt: skip
        assert id_token["nonce"] == auth.nonce
        assert id_token["at_hash"] == at_hash(body["access_token"])
        assert id_token["azp"] == client_id
        assert id_token["sub"] == str(user.id)
        assert (id_token["email"], id_token["name"], id_token["roles"]) == (
            user.email, "Alice", ["admin"],
        )  # fmt: skip
        assert id_token["sid"] == access["sid"]
        assert abs(id_token["auth_time"] - time.time()) < 60

        info = await app.client.get(
            "/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert info.status_code == 200, info.text
        assert info.json() == {
            "sub": str(user.id), "name": "Alice", "email": user.email,
            "email_verified": False, "roles": ["admin"],
        }  # fmt: skip

        id_as_access = await app.client.get(
            "/userinfo", headers={"Authorization": f"Bearer {body['id_token']}"}
        )
        assert id_as_access.status_code == 401
        assert 'error="invalid_token"' in id_as_access.headers["www-authenticate"]


async def test_second_use_of_a_code_fails_and_revokes_the_first_tokens(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, secret = await registered(pool, settings)
    user = await make_user(pool)
    auth = Authorization(client_id, REDIRECT)
    async with app_instance() as app:
        code = await authorize_code(app.client, auth, user.email, PASSWORD)
        first = await exchange_code(app.client, client_id, secret, code, auth)
        access_token = first.json()["access_token"]
        bearer = {"Authorization": f"Bearer {access_token}"}
        assert (await app.client.get("/userinfo", headers=bearer)).status_code == 200

        replay = await exchange_code(app.client, client_id, secret, code, auth)
        assert_oauth_error(replay, 400, "invalid_grant")
        assert (await app.client.get("/userinfo", headers=bearer)).status_code == 401


async def test_ten_concurrent_exchanges_of_one_code_yield_exactly_one_success(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, secret = await registered(pool, settings)
    user = await make_user(pool)
    auth = Authorization(client_id, REDIRECT)
    async with app_instance() as app:
        code = await authorize_code(app.client, auth, user.email, PASSWORD)
        results = await asyncio.gather(
            *(exchange_code(app.client, client_id, secret, code, auth) for _ in range(10))
        )
    assert sorted(r.status_code for r in results) == [200] + [400] * 9
    assert {r.json().get("error") for r in results if r.status_code == 400} == {"invalid_grant"}


async def test_wrong_pkce_verifier_is_invalid_grant(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, secret = await registered(pool, settings)
    user = await make_user(pool)
    auth = Authorization(client_id, REDIRECT)
    async with app_instance() as app:
        code = await authorize_code(app.client, auth, user.email, PASSWORD)
        right = auth.verifier
        auth.verifier = right[::-1]
        wrong = await exchange_code(app.client, client_id, secret, code, auth)
        assert_oauth_error(wrong, 400, "invalid_grant")
        auth.verifier = right  # the failed attempt spent the code: no guessing the verifier
        assert_oauth_error(await exchange_code(app.client, client_id, secret, code, auth), 400,
                           "invalid_grant")  # fmt: skip


async def test_unregistered_redirect_uri_shows_an_error_page_and_never_redirects(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, _ = await registered(pool, settings)
    async with app_instance() as app:
        for uri in ("https://evil.example/callback", REDIRECT + "/x", REDIRECT + "?a=1"):
            response = await app.client.get(Authorization(client_id, uri).url())
            assert response.status_code == 400
            assert "location" not in response.headers
            assert "Unknown redirect URI" in response.text
            assert response.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_errors_after_the_redirect_uri_go_back_with_state_and_iss(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, _ = await registered(pool, settings)
    auth = Authorization(client_id, REDIRECT)
    async with app_instance() as app:
        plain = await app.client.get(auth.url(code_challenge_method="plain"))
        scope = await app.client.get(auth.url(scope="openid admin"))
        none = await app.client.get(auth.url(prompt="none"))
    for response, error in ((plain, "invalid_request"), (scope, "invalid_scope"),
                            (none, "login_required")):  # fmt: skip
        assert response.status_code == 303
        query = query_of(response.headers["location"])
        assert response.headers["location"].startswith(REDIRECT)
        assert (query["error"], query["state"], query["iss"]) == (error, auth.state,
                                                                  settings.issuer)  # fmt: skip


async def test_unknown_email_and_wrong_password_look_the_same(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, _ = await registered(pool, settings)
    user = await make_user(pool)
    async with app_instance() as app:
        pages = []
        for email, password in ((user.email, "wrong password!"), ("nobody@example.com", PASSWORD)):
            start = await app.client.get(Authorization(client_id, REDIRECT).url())
            pages.append(await sign_in(app.client, start.headers["location"], email, password))
    wrong, unknown = pages
    assert wrong.status_code == unknown.status_code == 401
    assert "Incorrect email or password." in wrong.text

    def without_fields(html: str) -> str:
        """Without the lines that carry each attempt's own request (fields and links) and its
        own passkey challenge (the options)."""
        own = ("value=", "request=", 'id="passkey-options"')
        lines = html.splitlines()
        return "\n".join(line for line in lines if not any(mark in line for mark in own))

    assert without_fields(wrong.text) == without_fields(unknown.text)


async def test_repeated_failures_lock_the_account_with_a_clear_message(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, _ = await registered(pool, settings)
    user = await make_user(pool)
    async with app_instance() as app:
        statuses = []
        for _ in range(7):
            start = await app.client.get(Authorization(client_id, REDIRECT).url())
            page = await sign_in(app.client, start.headers["location"], user.email, "nope nope!")
            statuses.append(page.status_code)
        start = await app.client.get(Authorization(client_id, REDIRECT).url())
        locked = await sign_in(app.client, start.headers["location"], user.email, PASSWORD)
    assert statuses[:5] == [401] * 5
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.text
    row = await pool.fetchrow(
        "SELECT failures, locked_until FROM login_failures WHERE key = $1",
        f"email:{user.email}",
    )
    assert row is not None
    assert row["locked_until"] is not None


async def test_session_cookie_is_httponly_lax_and_replaced_at_sign_in(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, _ = await registered(pool, settings)
    user = await make_user(pool)
    async with app_instance() as app:
        app.client.cookies.set("idp_session", "planted-by-an-attacker")
        start = await app.client.get(Authorization(client_id, REDIRECT).url())
        done = await sign_in(app.client, start.headers["location"], user.email, PASSWORD)
    cookie = next(v for k, v in done.headers.multi_items() if k == "set-cookie"
                  and v.startswith("idp_session="))  # fmt: skip
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "planted-by-an-attacker" not in cookie
    stored = await pool.fetch("SELECT id_hash FROM sessions")
    value = cookie.split(";")[0].split("=", 1)[1]
    assert value.encode() not in b"".join(row["id_hash"] for row in stored)


async def test_consent_is_asked_once_for_third_party_clients_and_deny_is_access_denied(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, _ = await registered(pool, settings, first_party=False)
    user = await make_user(pool)
    async with app_instance() as app:
        auth = Authorization(client_id, REDIRECT)
        start = await app.client.get(auth.url())
        after_login = await sign_in(app.client, start.headers["location"], user.email, PASSWORD)
        assert after_login.headers["location"].startswith("/consent")
        page = await app.client.get(after_login.headers["location"])
        assert "See your email address" in page.text
        denied = await app.client.post(
            "/consent", data={**hidden_fields(page.text), "decision": "deny"}
        )
        assert query_of(denied.headers["location"])["error"] == "access_denied"

        auth = Authorization(client_id, REDIRECT)
        start = await app.client.get(auth.url())
        page = await app.client.get(start.headers["location"])
        allowed = await app.client.post(
            "/consent", data={**hidden_fields(page.text), "decision": "allow"}
        )
        assert "code" in query_of(allowed.headers["location"])
        again = await app.client.get(Authorization(client_id, REDIRECT).url())
        assert "code" in query_of(again.headers["location"]), "consent is remembered"


async def test_prompt_login_and_max_age_ask_for_a_new_sign_in_then_complete(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    client_id, _ = await registered(pool, settings)
    user = await make_user(pool)
    async with app_instance() as app:
        await authorize_code(app.client, Authorization(client_id, REDIRECT), user.email, PASSWORD)
        silent = await app.client.get(Authorization(client_id, REDIRECT).url())
        assert "code" in query_of(silent.headers["location"]), "the session signs in silently"

        forced = await app.client.get(Authorization(client_id, REDIRECT).url(prompt="login"))
        assert forced.headers["location"].startswith("/login?")
        done = await sign_in(app.client, forced.headers["location"], user.email, PASSWORD)
        assert "code" in query_of(done.headers["location"]), "a fresh sign-in satisfies it"

        clock.advance(timedelta(minutes=10))
        stale = await app.client.get(Authorization(client_id, REDIRECT).url(max_age="300"))
        assert stale.headers["location"].startswith("/login?")
        recent = await app.client.get(Authorization(client_id, REDIRECT).url(max_age="3600"))
        assert "code" in query_of(recent.headers["location"])


async def test_https_issuer_gets_host_prefixed_secure_cookies(settings: Settings) -> None:
    cookies = Cookies(replace(settings, issuer="https://login.example"))
    assert (cookies.session, cookies.login) == ("__Host-idp_session", "__Host-idp_login")
    response = Response()
    cookies.set_session(response, "value")
    header = response.headers["set-cookie"].lower()
    assert "secure" in header
    assert "httponly" in header
    assert "path=/" in header
    assert "domain" not in header, "__Host- cookies must not name a domain"
