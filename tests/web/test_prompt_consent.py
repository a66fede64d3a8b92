"""``prompt=consent`` (OIDC Core §3.1.2.1): the consent page is shown whatever was granted
before, for first-party clients too, as §11 asks before a refresh token for ``offline_access``
(the MCP Python SDK sends ``prompt=consent`` with that scope)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest

from idp.db.clients import Client
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import PASSWORD, make_client, make_user
from tests.oauth.flow import Authorization, query_of, sign_in
from tests.web.test_consent_unverified import REDIRECT, allow, to_consent


async def code_client(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    grant_types: Sequence[str] = ("authorization_code",),
    scopes: Sequence[str] = ("openid",),
    first_party: bool = False,
) -> Client:
    """A confidential client of the code flow, redirecting to REDIRECT."""
    client, _ = await make_client(
        pool,
        settings,
        grant_types=grant_types,
        redirect_uris=(REDIRECT,),
        scopes=scopes,
        first_party=first_party,
    )
    return client


@pytest.mark.parametrize("first_party", [False, True], ids=["third-party", "first-party"])
async def test_prompt_consent_asks_again_although_the_client_needs_no_consent(
    first_party: bool, app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A first-party client, or a third-party one whose consent is remembered, goes straight
    back to the client without prompt; with prompt=consent the user is asked, and allowing
    gives a code."""
    client = await code_client(
        pool,
        settings,
        grant_types=("authorization_code", "refresh_token"),
        scopes=("openid", "email", "offline_access"),
        first_party=first_party,
    )
    user = await make_user(pool)
    async with app_instance() as app:
        first = Authorization(client.client_id, REDIRECT, scope="openid email offline_access")
        answer = await to_consent(app, first, user.email)
        if not first_party:
            await allow(app, answer.headers["location"])
            answer = await app.client.get(first.url())
        assert answer.headers["location"].startswith(REDIRECT)  # nothing more to ask
        again = Authorization(client.client_id, REDIRECT, scope="openid email offline_access")
        asked = await app.client.get(again.url(prompt="consent"))
        assert asked.status_code == 303
        assert asked.headers["location"].startswith("/consent?request=")
        back = query_of(await allow(app, asked.headers["location"]))
    assert back["state"] == again.state
    assert "code" in back


async def test_prompt_login_consent_asks_for_both(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client = await code_client(pool, settings, first_party=True)
    user = await make_user(pool)
    async with app_instance() as app:
        await to_consent(app, Authorization(client.client_id, REDIRECT, scope="openid"), user.email)
        auth = Authorization(client.client_id, REDIRECT, scope="openid")
        answer = await app.client.get(auth.url(prompt="login consent"))
        assert answer.headers["location"].startswith("/login")
        answer = await sign_in(app.client, answer.headers["location"], user.email, PASSWORD)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith("/consent?request=")


async def test_prompt_none_with_consent_is_invalid_request_and_discovery_names_consent(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client = await code_client(pool, settings)
    async with app_instance() as app:
        auth = Authorization(client.client_id, REDIRECT, scope="openid")
        answer = await app.client.get(auth.url(prompt="none consent"))
        metadata = (await app.client.get("/.well-known/openid-configuration")).json()
    assert answer.status_code == 303
    assert query_of(answer.headers["location"])["error"] == "invalid_request"
    assert metadata["prompt_values_supported"] == ["none", "login", "consent"]
