"""The client_credentials grant at ``POST /token`` (RFC 6749 §4.4), issuing RFC 9068 access
tokens under the audience rule of DESIGN.md ("Tokens")."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import jwt
import pytest

from idp.clock import FrozenClock
from idp.db import clients
from idp.oauth.registration import register
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error, make_client

GRANT = {"grant_type": "client_credentials"}
API = "https://api.example"
OTHER_API = "https://other.example"
# RFC 9068 §2.2 claims every access token must carry (scope only when a scope was granted).
REQUIRED_CLAIMS = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]


@pytest.fixture(autouse=True)
def wall_clock_time(clock: FrozenClock) -> FrozenClock:
    """Freeze the app's clock at the current wall time: PyJWT checks exp and iat against it."""
    clock.set(datetime.now(UTC).replace(microsecond=0))
    return clock


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: each part form-urlencoded, then joined by a colon and base64-encoded."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


async def token_with_basic(
    http: httpx.AsyncClient, client_id: str, secret: str, /, **form: str | list[str]
) -> httpx.Response:
    return await http.post("/token", data={**GRANT, **form}, headers=basic(client_id, secret))


async def verified_token(
    http: httpx.AsyncClient, token: str, *, audience: str, issuer: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of ``token``, verified as a resource server does: against the served
    JWKS, key chosen by ``kid``, RS256 pinned, ``iss`` and ``aud`` checked."""
    jwks = (await http.get("/jwks.json")).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    decoded = jwt.decode_complete(
        token,
        key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=issuer,
        options={"require": REQUIRED_CLAIMS},
    )
    return decoded["header"], decoded["payload"]


def claims_of(response: httpx.Response) -> dict[str, Any]:
    """The unverified claims (for tests about which claims, not about the signature)."""
    assert response.status_code == 200, response.text
    claims: dict[str, Any] = jwt.decode(
        response.json()["access_token"], options={"verify_signature": False}
    )
    return claims


async def test_basic_authenticated_client_gets_an_rfc9068_token_verifiable_with_the_jwks(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    wall_clock_time: FrozenClock,
) -> None:
    client, secret = await make_client(pool, settings, scopes=("read", "write"), audiences=(API,))
    async with app_instance() as instance:
        response = await token_with_basic(instance.client, client.client_id, secret)
        assert response.status_code == 200, response.text
        body = response.json()
        header, claims = await verified_token(
            instance.client, body["access_token"], audience=API, issuer=settings.issuer
        )
        signer = instance.state["keyring"].snapshot.signer.kid

    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"  # RFC 6749 §5.1
    assert response.headers["pragma"] == "no-cache"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == int(settings.access_token_ttl.total_seconds())
    assert body["scope"] == "read write"
    assert "refresh_token" not in body  # RFC 6749 §4.4.3: SHOULD NOT be included
    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": signer}
    issued_at = int(wall_clock_time.now().timestamp())
    assert claims["iss"] == settings.issuer
    assert claims["sub"] == client.client_id
    assert claims["client_id"] == client.client_id
    assert claims["aud"] == API
    assert claims["scope"] == "read write"
    assert claims["iat"] == issued_at
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16


async def test_each_token_gets_a_distinct_jti(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, secret = await make_client(pool, settings)
    async with app_instance() as instance:
        responses = [
            await token_with_basic(instance.client, client.client_id, secret) for _ in range(3)
        ]
    assert len({claims_of(response)["jti"] for response in responses}) == 3


async def test_client_secret_post_gets_the_same_kind_of_token(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, secret = await make_client(pool, settings, scopes=("read",))
    form = {**GRANT, "client_id": client.client_id, "client_secret": secret}
    async with app_instance() as instance:
        response = await instance.client.post("/token", data=form)
        assert response.status_code == 200, response.text
        body = response.json()
        header, claims = await verified_token(
            instance.client, body["access_token"], audience=settings.issuer, issuer=settings.issuer
        )
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == int(settings.access_token_ttl.total_seconds())
    assert header["typ"] == "at+jwt"
    assert (claims["sub"], claims["client_id"]) == (client.client_id, client.client_id)
    assert claims["scope"] == "read"
    assert claims["exp"] - claims["iat"] == body["expires_in"]


async def test_basic_and_post_authentication_together_is_invalid_request(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request."""
    client, secret = await make_client(pool, settings)
    async with app_instance() as instance:
        response = await token_with_basic(
            instance.client,
            client.client_id,
            secret,
            client_id=client.client_id,
            client_secret=secret,
        )
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param("wrong_secret", id="wrong-secret-basic"),
        pytest.param("wrong_secret_post", id="wrong-secret-post"),
        pytest.param("unknown_client", id="unknown-client-id"),
        pytest.param("none", id="no-authentication"),
    ],
)
async def test_failed_client_authentication_is_401_invalid_client_with_a_basic_challenge(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, credentials: str
) -> None:
    """RFC 6749 §5.2: invalid_client is a 401 carrying WWW-Authenticate."""
    client, secret = await make_client(pool, settings)
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    async with app_instance() as instance:
        http = instance.client
        if credentials == "wrong_secret":
            response = await token_with_basic(http, client.client_id, wrong)
        elif credentials == "wrong_secret_post":
            form = {**GRANT, "client_id": client.client_id, "client_secret": wrong}
            response = await http.post("/token", data=form)
        elif credentials == "unknown_client":
            response = await token_with_basic(http, "no-such-client", secret)
        else:
            response = await http.post("/token", data=GRANT)
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.headers["cache-control"] == "no-store"
    assert "access_token" not in response.json()


async def test_disabled_client_is_refused_within_a_second_although_it_was_cached(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, secret = await make_client(pool, settings)
    async with app_instance() as instance:
        http = instance.client
        first = await token_with_basic(http, client.client_id, secret)
        assert first.status_code == 200, first.text  # the client is now in the registry's cache

        assert await clients.disable(pool, client.client_id)  # NOTIFY idp_clients
        deadline = time.monotonic() + 1.0
        while True:
            response = await token_with_basic(http, client.client_id, secret)
            if response.status_code != 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_client_not_registered_for_client_credentials_is_unauthorized_client(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=("https://app.example/cb",),
    )
    async with app_instance() as instance:
        response = await token_with_basic(instance.client, client.client_id, secret)
    assert_oauth_error(response, 400, "unauthorized_client")


async def test_password_grant_is_unsupported_grant_type(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """DESIGN.md: the resource-owner password grant is out of scope (RFC 9700 §2.4)."""
    client, secret = await make_client(pool, settings)
    form = {"grant_type": "password", "username": "alice@example.com", "password": "x"}
    async with app_instance() as instance:
        response = await instance.client.post(
            "/token", data=form, headers=basic(client.client_id, secret)
        )
    assert_oauth_error(response, 400, "unsupported_grant_type")


async def test_public_client_is_invalid_client(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """RFC 6749 §4.4.2: the client MUST authenticate; a public client sends only its id, so the
    request includes no client authentication (RFC 6749 §5.2 invalid_client)."""
    client, _ = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=("https://app.example/cb",),
        public=True,
    )
    form = {**GRANT, "client_id": client.client_id}
    async with app_instance() as instance:
        response = await instance.client.post("/token", data=form)
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_public_client_listing_the_grant_is_still_invalid_client(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A row that registration would refuse (public + client_credentials, e.g. written by SQL)
    still gets no token: the grant itself refuses public clients."""
    registered, _ = register(
        name="spa",
        redirect_uris=("https://app.example/cb",),
        grant_types=("authorization_code",),
        scopes=("read",),
        audiences=(),
        post_logout_redirect_uris=(),
        public=True,
        first_party=False,
        access_token_ttl=None,
        refresh_token_ttl=None,
        settings=settings,
        now=datetime.now(UTC),
    )
    both = ("authorization_code", "client_credentials")
    client = await clients.insert(pool, replace(registered, grant_types=both))
    form = {**GRANT, "client_id": client.client_id}
    async with app_instance() as instance:
        response = await instance.client.post("/token", data=form)
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_requested_subset_of_registered_scopes_is_granted(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, secret = await make_client(pool, settings, scopes=("read", "write", "admin"))
    async with app_instance() as instance:
        response = await token_with_basic(
            instance.client, client.client_id, secret, scope="write read"
        )
    assert response.json()["scope"] == "write read"
    assert claims_of(response)["scope"] == "write read"


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param("admin", id="unregistered"),
        pytest.param("read admin", id="one-of-two-unregistered"),
        pytest.param("openid", id="openid"),
        pytest.param("read profile", id="user-scope-profile"),
    ],
)
async def test_scope_not_grantable_to_the_client_itself_is_invalid_scope(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, scope: str
) -> None:
    """openid and profile are registered but need a user, which this grant has not."""
    client, secret = await make_client(
        pool, settings, scopes=("read", "write", "openid", "profile")
    )
    async with app_instance() as instance:
        response = await token_with_basic(instance.client, client.client_id, secret, scope=scope)
    assert_oauth_error(response, 400, "invalid_scope")


async def test_without_scope_the_token_carries_the_registered_non_user_scopes(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, secret = await make_client(
        pool, settings, scopes=("openid", "read", "profile", "write", "email")
    )
    async with app_instance() as instance:
        response = await token_with_basic(instance.client, client.client_id, secret)
    assert response.json()["scope"] == "read write"
    assert claims_of(response)["scope"] == "read write"


async def test_without_resource_aud_is_the_first_registered_audience(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, secret = await make_client(pool, settings, audiences=(API, OTHER_API))
    async with app_instance() as instance:
        response = await token_with_basic(instance.client, client.client_id, secret)
    assert claims_of(response)["aud"] == API


async def test_without_resource_or_registered_audience_aud_is_the_issuer(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, secret = await make_client(pool, settings, audiences=())
    async with app_instance() as instance:
        response = await token_with_basic(instance.client, client.client_id, secret)
    assert claims_of(response)["aud"] == settings.issuer


@pytest.mark.parametrize("parameter", ["resource", "audience"])
async def test_requested_registered_target_becomes_aud(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, parameter: str
) -> None:
    """RFC 8707 §2 ``resource`` (or ``audience``) picks one of the registered audiences."""
    client, secret = await make_client(pool, settings, audiences=(OTHER_API, API))
    async with app_instance() as instance:
        response = await token_with_basic(
            instance.client, client.client_id, secret, **{parameter: API}
        )
    assert claims_of(response)["aud"] == API


@pytest.mark.parametrize(
    "target",
    [
        pytest.param({"resource": "https://evil.example"}, id="unregistered-resource"),
        pytest.param({"audience": "https://evil.example"}, id="unregistered-audience"),
        pytest.param({"resource": API + "/"}, id="resource-differing-by-a-slash"),
        pytest.param({"resource": [API, "https://evil.example"]}, id="one-of-two-unregistered"),
        pytest.param({"resource": "http://idp.test"}, id="issuer-not-registered"),
    ],
)
async def test_unregistered_target_is_invalid_target(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    target: dict[str, str | list[str]],
) -> None:
    client, secret = await make_client(pool, settings, audiences=(API,))
    async with app_instance() as instance:
        response = await token_with_basic(instance.client, client.client_id, secret, **target)
    assert_oauth_error(response, 400, "invalid_target")


async def test_two_registered_resources_give_an_aud_list_of_both(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, secret = await make_client(pool, settings, audiences=(API, OTHER_API))
    async with app_instance() as instance:
        response = await token_with_basic(
            instance.client, client.client_id, secret, resource=[OTHER_API, API]
        )
    assert claims_of(response)["aud"] == [OTHER_API, API]


async def test_per_client_access_token_ttl_sets_expires_in_and_exp(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    assert settings.access_token_ttl != timedelta(minutes=2)  # else the test proves nothing
    client, secret = await make_client(pool, settings, access_token_ttl=timedelta(minutes=2))
    async with app_instance() as instance:
        response = await token_with_basic(instance.client, client.client_id, secret)
    claims = claims_of(response)
    assert response.json()["expires_in"] == 120
    assert claims["exp"] - claims["iat"] == 120
