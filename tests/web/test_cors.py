"""CORS: public metadata for any origin; /token and /userinfo only for the client's origins."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from idp.clock import FrozenClock
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import make_client, make_user
from tests.oauth.flow import Authorization, authorize_code

SPA = "https://spa.example"
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def real_time(clock: FrozenClock) -> None:
    clock.set(datetime.now(UTC))


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
