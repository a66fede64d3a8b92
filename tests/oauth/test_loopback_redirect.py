"""Native apps on an ephemeral port (RFC 8252 §7.3): a registered ``http://127.0.0.1/...`` or
``http://[::1]/...`` redirect URI, or ``http://localhost/...`` for a client without a secret
(§8.3; idp.oauth.redirect_uris), matches with any port, and with nothing else changed; every
other redirect URI is compared whole (RFC 6749 §3.1.2.3)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from idp.db import clients
from idp.oauth.registration import RegistrationError, register, validate
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error, make_client, make_user
from tests.oauth.flow import Authorization, authorize_code, exchange_code_public

pytestmark = pytest.mark.usefixtures("real_time")

PASSWORD = "correct horse battery"


async def native_app(pool: asyncpg.Pool, settings: Settings, *redirect_uris: str) -> str:
    """A public client (a CLI or desktop app: no secret, PKCE)."""
    client, _ = await make_client(
        pool,
        settings,
        name="native",
        grant_types=("authorization_code",),
        redirect_uris=redirect_uris,
        scopes=("openid",),
        public=True,
        first_party=True,
    )
    return client.client_id


async def assert_refused_on_a_page(http: httpx.AsyncClient, auth: Authorization) -> None:
    response = await http.get(auth.url())
    assert response.status_code == 400, (auth.redirect_uri, response.status_code)
    assert "location" not in response.headers
    assert "Unknown redirect URI" in response.text


@pytest.mark.parametrize(
    ("registered", "presented"),
    [
        ("http://127.0.0.1/callback", "http://127.0.0.1:51234/callback"),
        ("http://[::1]/callback", "http://[::1]:51234/callback"),
        ("http://127.0.0.1:3000/callback", "http://127.0.0.1:51234/callback"),
        ("http://127.0.0.1/callback?app=cli", "http://127.0.0.1:8/callback?app=cli"),
        ("http://localhost/callback", "http://localhost:51234/callback"),
        ("http://localhost:33418/callback", "http://localhost:51234/callback"),
        ("http://localhost:33418/callback", "http://LOCALHOST:51234/callback"),
    ],
    ids=[
        "ipv4",
        "ipv6",
        "registered-with-a-port",
        "with-query",
        "localhost",
        "localhost-registered-with-a-port",
        "localhost-in-capitals",
    ],
)
async def test_a_loopback_redirect_uri_matches_any_port_and_the_code_flow_completes(
    registered: str,
    presented: str,
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
) -> None:
    client_id = await native_app(pool, settings, registered)
    user = await make_user(pool, password=PASSWORD)
    async with app_instance() as instance:
        auth = Authorization(client_id, presented, scope="openid")
        code = await authorize_code(instance.client, auth, user.email, PASSWORD)  # back there
        response = await exchange_code_public(instance.client, code, auth, presented)

    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "used_instead",
    ["http://127.0.0.1/callback", "http://127.0.0.1:51235/callback"],
    ids=["the-registered-one", "another-port"],
)
async def test_the_token_request_must_repeat_the_redirect_uri_used_port_included(
    used_instead: str, app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """RFC 6749 §4.1.3: "identical" to the one in the authorization request, not just a match."""
    client_id = await native_app(pool, settings, "http://127.0.0.1/callback")
    user = await make_user(pool, password=PASSWORD)
    async with app_instance() as instance:
        auth = Authorization(client_id, "http://127.0.0.1:51234/callback", scope="openid")
        code = await authorize_code(instance.client, auth, user.email, PASSWORD)
        response = await exchange_code_public(instance.client, code, auth, used_instead)

    assert_oauth_error(response, 400, "invalid_grant")


@pytest.mark.parametrize(
    "presented",
    [
        "http://127.0.0.1:51234/other",
        "http://127.0.0.1:51234/callback/",
        "http://127.0.0.1:51234/callback?x=1",
        "http://127.0.0.1:51234/callback#x",
        "http://[::1]:51234/callback",
        "http://localhost:51234/callback",
        "http://127.0.0.2:51234/callback",
        "https://127.0.0.1:51234/callback",
        "HTTP://127.0.0.1:51234/callback",
        "http://127.0.0.1:51234@evil.example/callback",
        "http://127.0.0.1:51234.evil.example/callback",
        "http://127.0.0.1:0/callback",
        "http://127.0.0.1:070/callback",
        "http://127.0.0.1:65536/callback",
        "http://127.0.0.1:/callback",
    ],
)
async def test_only_the_port_of_a_loopback_redirect_uri_may_change(
    presented: str, app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id = await native_app(pool, settings, "http://127.0.0.1/callback")
    async with app_instance() as instance:
        await assert_refused_on_a_page(instance.client, Authorization(client_id, presented))


@pytest.mark.parametrize(
    "presented",
    [
        "http://localhost:51234/other",
        "http://localhost:51234/callback?x=1",
        "http://127.0.0.1:51234/callback",
        "http://[::1]:51234/callback",
        "https://localhost:51234/callback",
        "HTTP://localhost:51234/callback",
        "http://localhost.:51234/callback",
        "http://localhost.evil.example:51234/callback",
        "http://localhost.evil.example/callback",
        "http://localhost@evil.example/callback",
        "http://localhost:51234@evil.example/callback",
        "http://evil.example@localhost:51234/callback",
        "http://127.0.0.1.nip.io:51234/callback",
        "http://localhost:65536/callback",
    ],
)
async def test_only_the_port_of_a_localhost_redirect_uri_may_change(
    presented: str, app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """Another host is never localhost, whatever it starts with; the IP literals are other
    hosts too (no crossing over: the app listens on the one it registered)."""
    client_id = await native_app(pool, settings, "http://localhost/callback")
    async with app_instance() as instance:
        await assert_refused_on_a_page(instance.client, Authorization(client_id, presented))


async def test_no_other_redirect_uri_gets_a_free_port(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """Not https on loopback (a server of its own, RFC 8252 §7.3 names http), not a DNS name."""
    client, _ = register(
        name="older",
        redirect_uris=(
            "https://127.0.0.1/callback",
            "https://localhost/callback",
            "https://app.example/callback",
        ),
        grant_types=("authorization_code",),
        scopes=("openid",),
        audiences=(),
        post_logout_redirect_uris=(),
        public=True,
        first_party=True,
        access_token_ttl=None,
        refresh_token_ttl=None,
        settings=settings,
        now=datetime.now(UTC),
    )
    await clients.insert(pool, client)
    async with app_instance() as instance:
        for presented in (
            "https://127.0.0.1:8443/callback",
            "https://localhost:8443/callback",
            "https://app.example:8443/callback",
        ):
            await assert_refused_on_a_page(
                instance.client, Authorization(client.client_id, presented)
            )
        for exact in client.redirect_uris:  # each still works as registered
            response = await instance.client.get(Authorization(client.client_id, exact).url())
            assert response.status_code == 303, (exact, response.text)


async def test_a_client_with_a_secret_gets_no_free_port_on_localhost(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """``localhost`` is for native apps (idp.oauth.redirect_uris): a client with a secret cannot
    register it, and one holding it from elsewhere (a row written before this rule) keeps
    exact matching for it."""
    client, secret = register(
        name="web app",
        redirect_uris=("https://app.example/callback",),
        grant_types=("authorization_code",),
        scopes=("openid",),
        audiences=(),
        post_logout_redirect_uris=(),
        public=False,
        first_party=True,
        access_token_ttl=None,
        refresh_token_ttl=None,
        settings=settings,
        now=datetime.now(UTC),
    )
    assert secret is not None
    with pytest.raises(RegistrationError, match="native apps without a secret"):
        validate(replace(client, redirect_uris=("http://localhost/callback",)), settings)
    redirect_uris = (*client.redirect_uris, "http://localhost/callback")
    await clients.insert(pool, replace(client, redirect_uris=redirect_uris))
    async with app_instance() as instance:
        for presented in ("http://localhost:51234/callback", "https://app.example:8443/callback"):
            await assert_refused_on_a_page(
                instance.client, Authorization(client.client_id, presented)
            )
        for exact in redirect_uris:
            response = await instance.client.get(Authorization(client.client_id, exact).url())
            assert response.status_code == 303, (exact, response.text)
