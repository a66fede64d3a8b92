"""CORS: public metadata for any origin; /token, /revoke and /userinfo (and their preflights)
only for registered origins."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from idp.db import clients
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import make_client, make_user
from tests.oauth.flow import Authorization, authorize_code

pytestmark = pytest.mark.usefixtures("real_time")

SPA = "https://spa.example"
PASSWORD = "correct horse battery"


async def test_discovery_and_jwks_are_open_to_any_origin(app_instance: InstanceFactory) -> None:
    async with app_instance() as app:
        for path in ("/jwks.json", "/.well-known/openid-configuration"):
            response = await app.client.get(path, headers={"Origin": "https://any.example"})
            assert response.headers["access-control-allow-origin"] == "*"


async def test_token_and_userinfo_answer_only_the_clients_registered_origin(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    spa, _ = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(f"{SPA}/callback",),
        scopes=("openid", "email"),
        public=True,
        first_party=True,
    )
    user = await make_user(pool)
    auth = Authorization(spa.client_id, f"{SPA}/callback", scope="openid email")
    async with app_instance() as app:
        preflight = await app.client.options(
            "/token",
            headers={"Origin": SPA, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == SPA
        assert "access-control-allow-credentials" not in preflight.headers

        code = await authorize_code(app.client, auth, user.email, PASSWORD)
        form = {
            "grant_type": "authorization_code",
            "client_id": spa.client_id,
            "code": code,
            "redirect_uri": auth.redirect_uri,
            "code_verifier": auth.verifier,
        }
        tokens = await app.client.post("/token", data=form, headers={"Origin": SPA})
        assert tokens.status_code == 200, tokens.text
        assert tokens.headers["access-control-allow-origin"] == SPA
        assert "access-control-allow-credentials" not in tokens.headers

        bearer = f"Bearer {tokens.json()['access_token']}"
        mine = await app.client.get("/userinfo", headers={"Authorization": bearer, "Origin": SPA})
        other = await app.client.get(
            "/userinfo", headers={"Authorization": bearer, "Origin": "https://evil.example"}
        )
    assert mine.headers["access-control-allow-origin"] == SPA
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers


async def preflight_from(client: httpx.AsyncClient, path: str, origin: str) -> httpx.Response:
    return await client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


@pytest.mark.parametrize("path", ["/token", "/revoke", "/userinfo"])
@pytest.mark.parametrize("origin", ["https://evil.example", "null", "https://spa.example:8443"])
async def test_preflight_from_an_origin_no_client_registered_is_refused(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, path: str, origin: str
) -> None:
    await make_client(
        pool, settings, grant_types=("authorization_code",),
        redirect_uris=(f"{SPA}/callback",), public=True,
    )  # fmt: skip
    async with app_instance() as app:
        refused = await preflight_from(app.client, path, origin)
        allowed = await preflight_from(app.client, path, SPA)
    assert refused.status_code == 403, "a status outside 200-299 fails the preflight"
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-methods" not in refused.headers
    assert refused.headers["vary"] == "Origin"
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == SPA
    assert "access-control-allow-credentials" not in allowed.headers


async def eventually_allowed(client: httpx.AsyncClient, origin: str, expected: bool) -> bool:
    """The preflight answer once the NOTIFY idp_clients has arrived (within a second)."""
    deadline = time.monotonic() + 1.0
    while True:
        allowed = (await preflight_from(client, "/token", origin)).status_code == 204
        if allowed == expected or time.monotonic() > deadline:
            return allowed
        await asyncio.sleep(0.02)


async def test_preflight_follows_clients_added_and_disabled_while_running(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    other = "https://other.example"
    async with app_instance() as app:
        assert (await preflight_from(app.client, "/token", other)).status_code == 403
        added, _ = await make_client(
            pool, settings, grant_types=("authorization_code",),
            redirect_uris=(f"{other}/cb", "com.example.app:/cb"), public=True,
        )  # fmt: skip
        assert await eventually_allowed(app.client, other, True), "a new client's origin"
        assert await clients.disable(pool, added.client_id)
        assert not await eventually_allowed(app.client, other, False), "a disabled client's"
