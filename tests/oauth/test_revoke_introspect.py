"""/revoke (RFC 7009) and /introspect (RFC 7662)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from idp.clock import FrozenClock
from idp.janitor import sweep
from idp.oauth.registration import RegistrationError, register
from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.factories import PASSWORD, assert_oauth_error, make_client, make_user
from tests.oauth.flow import (
    REDIRECT,
    App,
    Authorization,
    app_with_refresh,
    authorize_code,
    exchange_code,
    introspect,
)

pytestmark = pytest.mark.usefixtures("real_time")

API = "https://api.example"


async def revoke(app: App, token: str, **extra: str) -> httpx.Response:
    return await app.http.post(
        "/revoke", auth=(app.client_id, app.secret), data={"token": token, **extra}
    )


async def resource_server(
    pool: asyncpg.Pool, settings: Settings, *audiences: str
) -> tuple[str, str]:
    """A confidential client registered to introspect access tokens meant for ``audiences``
    (API when none are named: the audience of ``app_for_api``'s tokens)."""
    client, secret = await make_client(
        pool,
        settings,
        name="api",
        grant_types=("client_credentials",),
        introspect_audiences=audiences or (API,),
    )
    return client.client_id, secret


async def app_for_api(instance: Instance, pool: asyncpg.Pool, settings: Settings) -> App:
    """``app_with_refresh``'s app, its client registered for API: its code-flow tokens are
    meant for API and, with ``openid``, for the issuer (/userinfo)."""
    client, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email", "roles", "offline_access"),
        audiences=(API,),
        first_party=True,
    )
    user = await make_user(pool, "alice@example.com")
    return App(instance, client.client_id, secret, user.email)


async def test_live_access_token_introspects_with_its_claims_and_not_after_revocation(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        app = await app_for_api(instance, pool, settings)
        rs = await resource_server(pool, settings)
        tokens = await app.sign_in()
        live = await introspect(app.http, rs, tokens["access_token"])
        assert live["active"] is True
        assert live["client_id"] == app.client_id
        assert live["token_type"] == "Bearer"
        assert {"scope", "sub", "aud", "iss", "exp", "iat", "jti"} <= live.keys()

        response = await revoke(app, tokens["access_token"], token_type_hint="access_token")
        assert response.status_code == 200
        assert await introspect(app.http, rs, tokens["access_token"]) == {"active": False}
        assert await app.userinfo_status(tokens["access_token"]) == 401
        refreshed = await app.refresh(tokens["refresh_token"])
        assert refreshed.status_code == 200, "revoking an access token leaves the family alive"


async def test_revoking_a_refresh_token_ends_its_family_and_its_access_tokens(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        app = await app_for_api(instance, pool, settings)
        rs = await resource_server(pool, settings)
        own = (app.client_id, app.secret)
        tokens = await app.sign_in()
        refresh = await introspect(app.http, own, tokens["refresh_token"])
        assert refresh["active"] is True
        assert refresh["token_type"] == "refresh_token"

        # a wrong hint is honoured only as an order of search, not trusted
        assert (
            await revoke(app, tokens["refresh_token"], token_type_hint="access_token")
        ).status_code == 200
        assert_oauth_error(await app.refresh(tokens["refresh_token"]), 400, "invalid_grant")
        assert await introspect(app.http, own, tokens["refresh_token"]) == {"active": False}
        assert await introspect(app.http, rs, tokens["access_token"]) == {"active": False}


async def test_theft_makes_every_access_token_of_the_family_inactive(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        own = (app.client_id, app.secret)
        r1 = await app.sign_in()
        r2 = (await app.refresh(r1["refresh_token"])).json()
        assert await introspect(app.http, own, r2["refresh_token"]) != {"active": False}
        assert_oauth_error(await app.refresh(r1["refresh_token"]), 400, "invalid_grant")
        for token in (r1["access_token"], r2["access_token"], r2["refresh_token"]):
            assert await introspect(app.http, own, token) == {"active": False}


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", "x" * 5000, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "\u00e9\u00e9"],
    ids=["empty", "garbage", "dots", "long", "alg-none", "non-ascii"],
)
async def test_unknown_or_bad_tokens_revoke_with_200_and_introspect_inactive(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, token: str
) -> None:
    async with app_instance() as instance:
        app = await app_for_api(instance, pool, settings)
        rs = await resource_server(pool, settings)
        revoked = await revoke(app, token)
        introspected = await app.http.post("/introspect", auth=rs, data={"token": token})
    if token == "":  # RFC 6749 §3.1: an empty parameter is a missing one
        assert_oauth_error(revoked, 400, "invalid_request")
        assert_oauth_error(introspected, 400, "invalid_request")
    else:
        assert revoked.status_code == 200
        assert introspected.json() == {"active": False}


async def test_revoking_another_clients_token_is_refused(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        tokens = await app.sign_in()
        other, other_secret = await make_client(pool, settings, grant_types=("client_credentials",))
        for token in (tokens["refresh_token"], tokens["access_token"]):
            response = await instance.client.post(
                "/revoke", auth=(other.client_id, other_secret), data={"token": token}
            )
            assert_oauth_error(response, 400, "unauthorized_client")
        assert (await app.refresh(tokens["refresh_token"])).status_code == 200


async def test_introspection_needs_an_authenticated_confidential_client(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    spa, _ = await make_client(
        pool, settings, grant_types=("authorization_code",),
        redirect_uris=("https://spa.example/cb",), public=True,
    )  # fmt: skip
    async with app_instance() as instance:
        anonymous = await instance.client.post("/introspect", data={"token": "x"})
        public = await instance.client.post(
            "/introspect", data={"token": "x", "client_id": spa.client_id}
        )
    assert_oauth_error(anonymous, 401, "invalid_client")
    assert_oauth_error(public, 401, "invalid_client")


async def test_client_credentials_token_introspects_with_the_client_as_subject(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    machine, secret = await make_client(pool, settings, scopes=("read",), audiences=(API,))
    rs = await resource_server(pool, settings)
    async with app_instance() as instance:
        issued = await instance.client.post(
            "/token", auth=(machine.client_id, secret), data={"grant_type": "client_credentials"}
        )
        token = issued.json()["access_token"]
        body = await introspect(instance.client, rs, token)
        assert (body["active"], body["sub"], body["scope"]) == (True, machine.client_id, "read")
        clock.advance(settings.access_token_ttl + settings.clock_skew)
        assert await introspect(instance.client, rs, token) == {"active": False}


async def test_a_token_for_a_resource_server_introspects_and_revokes_but_not_at_userinfo(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """RFC 7662 §1: introspection serves the resource servers a token is meant for; its
    audience is theirs, not the issuer's. /userinfo still wants a token meant for itself."""
    api = "https://api.example"
    machine, secret = await make_client(pool, settings, scopes=("read",), audiences=(api,))
    rs = await resource_server(pool, settings, api)
    async with app_instance() as instance:
        issued = await instance.client.post(
            "/token", auth=(machine.client_id, secret), data={"grant_type": "client_credentials"}
        )
        token = issued.json()["access_token"]
        body = await introspect(instance.client, rs, token)
        assert (body["active"], body["aud"]) == (True, api)
        userinfo = await instance.client.get(
            "/userinfo", headers={"Authorization": f"Bearer {token}"}
        )
        assert userinfo.status_code == 401
        revoked = await instance.client.post(
            "/revoke", auth=(machine.client_id, secret), data={"token": token}
        )
        assert revoked.status_code == 200
        assert await introspect(instance.client, rs, token) == {"active": False}


async def test_a_revoked_access_token_stays_refused_until_no_verifier_accepts_it(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    """Verifiers accept a token until exp + skew: the janitor must not free it before."""
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        tokens = await app.sign_in()
        assert (await revoke(app, tokens["access_token"])).status_code == 200
        clock.advance(settings.access_token_ttl + settings.clock_skew / 2)
        await sweep(pool, clock, settings)
        assert await app.userinfo_status(tokens["access_token"]) == 401


# -- who may introspect what (RFC 7662 §2.1, §4) ---------------------------------------------
async def test_a_client_never_learns_about_another_clients_refresh_token(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """Not even a resource server registered for the token's audience: a refresh token is
    meant for its client alone."""
    async with app_instance() as instance:
        app = await app_for_api(instance, pool, settings)
        other = await resource_server(pool, settings, API)
        tokens = await app.sign_in()
        unknown = await introspect(app.http, other, "garbage")
        for hint in ({}, {"token_type_hint": "refresh_token"}):
            answer = await introspect(app.http, other, tokens["refresh_token"], **hint)
            assert answer == unknown == {"active": False}
        own = await introspect(app.http, (app.client_id, app.secret), tokens["refresh_token"])
        assert (own["active"], own["client_id"]) == (True, app.client_id)


async def test_another_clients_access_token_is_inactive_unless_it_is_meant_for_the_caller(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    api = "https://api.example"
    machine, secret = await make_client(pool, settings, scopes=("read",), audiences=(api,))
    stranger, stranger_secret = await make_client(pool, settings, name="stranger")
    elsewhere = await resource_server(pool, settings, "https://other.example")
    api_server = await resource_server(pool, settings, api)
    async with app_instance() as instance:
        issued = await instance.client.post(
            "/token", auth=(machine.client_id, secret), data={"grant_type": "client_credentials"}
        )
        token = issued.json()["access_token"]
        unknown = await introspect(instance.client, elsewhere, "a.b.c")
        for caller in ((stranger.client_id, stranger_secret), elsewhere):
            answer = await introspect(instance.client, caller, token)
            assert answer == unknown == {"active": False}
        meant_for = await introspect(instance.client, api_server, token)
        own = await introspect(instance.client, (machine.client_id, secret), token)
    assert (meant_for["active"], meant_for["aud"], meant_for["client_id"]) == (
        True,
        api,
        machine.client_id,
    )
    assert own == meant_for


async def test_a_user_token_for_several_audiences_introspects_for_a_server_of_any_of_them(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A code-flow token with ``openid`` and a resource is meant for the API and the issuer."""
    api = "https://api.example"
    client, secret = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "email"),
        audiences=(api,),
        first_party=True,
    )
    await make_user(pool, "alice@example.com", PASSWORD)
    api_server = await resource_server(pool, settings, api)
    stranger = await resource_server(pool, settings, "https://other.example")
    async with app_instance() as instance:
        auth = Authorization(client.client_id, REDIRECT, scope="openid email")
        code = await authorize_code(instance.client, auth, "alice@example.com", PASSWORD)
        exchanged = await exchange_code(instance.client, client.client_id, secret, code, auth)
        token = exchanged.json()["access_token"]
        answer = await introspect(instance.client, api_server, token)
        assert (answer["active"], answer["aud"]) == (True, [api, settings.issuer])
        assert await introspect(instance.client, stranger, token) == {"active": False}


def test_registration_refuses_the_issuer_as_an_introspect_audience(settings: Settings) -> None:
    """The issuer is idp's own audience (/userinfo), in the ``aud`` of every ``openid`` token:
    registered for it, a client would learn about nearly every other client's tokens."""
    with pytest.raises(RegistrationError, match="is the issuer"):
        register(
            name="api",
            redirect_uris=(),
            grant_types=("client_credentials",),
            scopes=("read",),
            audiences=(),
            post_logout_redirect_uris=(),
            public=False,
            first_party=False,
            access_token_ttl=None,
            refresh_token_ttl=None,
            settings=settings,
            now=datetime.now(UTC),
            introspect_audiences=(API, settings.issuer),
        )


async def test_a_client_registered_for_the_issuer_learns_nothing_of_other_clients_tokens(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A registration made before the issuer was refused still holds it: the issuer in a
    token's ``aud`` (every ``openid`` token, every token of a client with no audience) makes
    no other client its resource server."""
    old, old_secret = await make_client(pool, settings, name="old api")
    await pool.execute(
        "UPDATE clients SET introspect_audiences = $1 WHERE client_id = $2",
        [settings.issuer],
        old.client_id,
    )
    machine, machine_secret = await make_client(pool, settings, name="machine")
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        code_flow = (await app.sign_in())["access_token"]
        issued = await instance.client.post(
            "/token",
            auth=(machine.client_id, machine_secret),
            data={"grant_type": "client_credentials"},
        )
        unknown = await introspect(instance.client, (old.client_id, old_secret), "a.b.c")
        for token, owner in (
            (code_flow, (app.client_id, app.secret)),
            (issued.json()["access_token"], (machine.client_id, machine_secret)),
        ):
            answer = await introspect(instance.client, (old.client_id, old_secret), token)
            assert answer == unknown == {"active": False}
            own = await introspect(instance.client, owner, token)
            assert own["active"] is True
            assert own["aud"] in (settings.issuer, [settings.issuer])
