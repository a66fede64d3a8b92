"""RP-Initiated Logout 1.0 at /logout."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from idp.clock import FrozenClock
from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.factories import make_client, make_user
from tests.oauth.flow import Authorization, authorize_code, exchange_code, hidden_fields, query_of

pytestmark = pytest.mark.usefixtures("real_time")

REDIRECT = "https://app.example/callback"
AFTER = "https://app.example/signed-out"
PASSWORD = "correct horse battery"


async def signed_in_app(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> tuple[str, str, str]:
    client, secret = await make_client(
        pool, settings, grant_types=("authorization_code",), redirect_uris=(REDIRECT,),
        scopes=("openid",), first_party=True, post_logout_redirect_uris=(AFTER,),
    )  # fmt: skip
    user = await make_user(pool)
    return client.client_id, secret, user.email


async def test_logout_with_a_registered_redirect_keeps_state_and_ends_the_session(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    client_id, secret, email = await signed_in_app(app_instance, pool, settings)
    async with app_instance() as app:
        auth = Authorization(client_id, REDIRECT, scope="openid")
        code = await authorize_code(app.client, auth, email, PASSWORD)
        tokens = await exchange_code(app.client, client_id, secret, code, auth)
        id_token = tokens.json()["id_token"]
        clock.advance(timedelta(hours=2))  # §2: an expired ID token is still a valid hint
        out = await app.client.get(
            "/logout",
            params={"id_token_hint": id_token, "post_logout_redirect_uri": AFTER, "state": "s1"},
        )
        assert out.status_code == 303
        assert out.headers["location"].startswith(AFTER)
        assert query_of(out.headers["location"]) == {"state": "s1"}

        again = await app.client.get(Authorization(client_id, REDIRECT, scope="openid").url())
        assert again.headers["location"].startswith("/login?"), "the next sign-in asks again"
    ended = await pool.fetchval("SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL")
    assert ended == 1


@pytest.mark.parametrize(
    "params",
    [
        {"post_logout_redirect_uri": "https://evil.example/"},  # no client named at all
        {"client_id": "CLIENT", "post_logout_redirect_uri": "https://evil.example/"},
        {"client_id": "CLIENT", "post_logout_redirect_uri": AFTER + "/x"},
        {"client_id": "CLIENT", "post_logout_redirect_uri": REDIRECT},  # a login, not logout, URI
        {"id_token_hint": "not.a.jwt", "post_logout_redirect_uri": AFTER},
        {"client_id": "CLIENT\x00", "post_logout_redirect_uri": AFTER},
    ],
    ids=["no-client", "unregistered", "prefix", "login-uri", "bad-hint", "nul"],
)
async def test_logout_never_redirects_to_an_unregistered_place(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, params: dict[str, str]
) -> None:
    client_id, _, email = await signed_in_app(app_instance, pool, settings)
    async with app_instance() as app:
        await authorize_code(app.client, Authorization(client_id, REDIRECT, scope="openid"),
                             email, PASSWORD)  # fmt: skip
        sent = {key: value.replace("CLIENT", client_id) for key, value in params.items()}
        ask = await app.client.get("/logout", params=sent)
        # No valid id_token_hint: the user is asked first (RP-Initiated Logout §2).
        assert ask.status_code == 200
        assert "location" not in ask.headers
        assert "Sign out of idp?" in ask.text
        assert ask.headers["x-frame-options"] == "DENY"
        still = await app.client.get(Authorization(client_id, REDIRECT, scope="openid").url())
        assert "code" in query_of(still.headers["location"]), "asking ends nothing"

        out = await app.client.post("/logout", data={**hidden_fields(ask.text), "confirm": "yes"})
        assert out.status_code == 200
        assert "location" not in out.headers
        assert "You are signed out" in out.text
        again = await app.client.get(Authorization(client_id, REDIRECT, scope="openid").url())
        assert again.headers["location"].startswith("/login?")


async def test_confirmed_logout_without_hint_goes_back_to_a_registered_uri(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, _, email = await signed_in_app(app_instance, pool, settings)
    async with app_instance() as app:
        await authorize_code(app.client, Authorization(client_id, REDIRECT, scope="openid"),
                             email, PASSWORD)  # fmt: skip
        params = {"client_id": client_id, "post_logout_redirect_uri": AFTER, "state": "s2"}
        ask = await app.client.get("/logout", params=params)
        forged = await app.client.post(
            "/logout", data={**hidden_fields(ask.text), "csrf_token": "forged", "confirm": "yes"}
        )
        assert forged.status_code == 400
        out = await app.client.post("/logout", data={**hidden_fields(ask.text), "confirm": "yes"})
    assert out.status_code == 303
    assert out.headers["location"].startswith(AFTER)
    assert query_of(out.headers["location"]) == {"state": "s2"}


async def test_discovery_lists_the_end_session_endpoint(app_instance: InstanceFactory) -> None:
    async with app_instance() as app:
        metadata = (await app.client.get("/.well-known/openid-configuration")).json()
    assert metadata["end_session_endpoint"] == "http://idp.test/logout"


async def id_token_of(
    app: Instance, client_id: str, secret: str, email: str
) -> tuple[str, Authorization]:
    """Sign in as ``email`` in this browser and return the ID token the app got."""
    auth = Authorization(client_id, REDIRECT, scope="openid")
    code = await authorize_code(app.client, auth, email, PASSWORD)
    tokens = await exchange_code(app.client, client_id, secret, code, auth)
    return tokens.json()["id_token"], auth


async def still_signed_in(app: Instance, client_id: str) -> bool:
    """prompt=none answers with a code only for a live session."""
    probe = await app.client.get(
        Authorization(client_id, REDIRECT, scope="openid").url(prompt="none")
    )
    return "code" in query_of(probe.headers["location"])


async def test_logout_with_the_attackers_own_id_token_asks_and_keeps_the_victim_signed_in(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, secret, email = await signed_in_app(app_instance, pool, settings)
    victim = await make_user(pool, "victim@example.com")
    async with app_instance() as app:
        attackers, _ = await id_token_of(app, client_id, secret, email)  # in their own browser
        app.client.cookies.clear()
        await id_token_of(app, client_id, secret, victim.email)  # the victim's browser
        lure = {"id_token_hint": attackers, "post_logout_redirect_uri": AFTER, "state": "s3"}
        ask = await app.client.get("/logout", params=lure)
        assert ask.status_code == 200
        assert "location" not in ask.headers
        assert "Sign out of idp?" in ask.text
        assert "another account" in ask.text
        assert await still_signed_in(app, client_id)
    live = await pool.fetchval(
        "SELECT count(*) FROM sessions WHERE user_id = $1 AND ended_at IS NULL", victim.id
    )
    assert live == 1


async def test_logout_with_an_id_token_of_an_earlier_session_asks_first(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, secret, email = await signed_in_app(app_instance, pool, settings)
    async with app_instance() as app:
        earlier, _ = await id_token_of(app, client_id, secret, email)
        app.client.cookies.clear()
        await id_token_of(app, client_id, secret, email)  # same user, new session (new sid)
        ask = await app.client.get(
            "/logout", params={"id_token_hint": earlier, "post_logout_redirect_uri": AFTER}
        )
        assert ask.status_code == 200
        assert "Sign out of idp?" in ask.text
        assert "another account" not in ask.text
        assert await still_signed_in(app, client_id)


async def test_confirming_a_logout_hinted_for_another_account_signs_out_and_goes_to_the_app(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, secret, email = await signed_in_app(app_instance, pool, settings)
    other = await make_user(pool, "other@example.com")
    async with app_instance() as app:
        others, _ = await id_token_of(app, client_id, secret, other.email)
        app.client.cookies.clear()
        await id_token_of(app, client_id, secret, email)
        params = {"id_token_hint": others, "post_logout_redirect_uri": AFTER, "state": "s4"}
        ask = await app.client.get("/logout", params=params)
        fields = hidden_fields(ask.text)
        assert "id_token_hint" not in fields, "the form carries the client, not the token"
        out = await app.client.post("/logout", data={**fields, "confirm": "yes"})
        assert out.status_code == 303
        assert out.headers["location"].startswith(AFTER)
        assert query_of(out.headers["location"]) == {"state": "s4"}
        assert not await still_signed_in(app, client_id)


async def test_logout_without_a_session_asks_nothing_and_ends_nothing(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, secret, email = await signed_in_app(app_instance, pool, settings)
    async with app_instance() as app:
        id_token, _ = await id_token_of(app, client_id, secret, email)
        app.client.cookies.clear()
        hinted = await app.client.get(
            "/logout", params={"id_token_hint": id_token, "post_logout_redirect_uri": AFTER}
        )
        assert hinted.status_code == 303
        assert hinted.headers["location"] == AFTER
        bare = await app.client.get("/logout")
        assert bare.status_code == 200
        assert "You are signed out" in bare.text
    ended = await pool.fetchval("SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL")
    assert ended == 0, "the session of the other browser is untouched"


async def test_an_invalid_hint_beside_a_valid_client_id_redirects_nowhere(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, secret, email = await signed_in_app(app_instance, pool, settings)
    async with app_instance() as app:
        id_token, _ = await id_token_of(app, client_id, secret, email)
        forged = id_token[:-4] + ("AAAA" if not id_token.endswith("AAAA") else "BBBB")
        params = {
            "id_token_hint": forged,
            "client_id": client_id,
            "post_logout_redirect_uri": AFTER,
        }
        ask = await app.client.get("/logout", params=params)
        assert "Sign out of idp?" in ask.text
        out = await app.client.post("/logout", data={**hidden_fields(ask.text), "confirm": "yes"})
    assert out.status_code == 200, "§4: after an error, no post-logout redirect"
    assert "You are signed out" in out.text
