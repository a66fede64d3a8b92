"""Dynamic client registration (RFC 7591) under IDP_DCR=open and token, its management with the
registration access token (RFC 7592), and the resources (RFC 8707) registered clients may name."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from joserfc import jwt

from idp.admin import initial_tokens
from idp.clock import FrozenClock
from idp.settings import Settings
from tests.admin_api import bearer
from tests.conftest import InstanceFactory
from tests.factories import PASSWORD, assert_oauth_error, keyset, make_client, make_user
from tests.hosted_login import walk_hosted_login
from tests.oauth.flow import Authorization, exchange_code_public, query_of

REGISTER = "/oauth2/register"
LOOPBACK = "http://127.0.0.1/callback"
NATIVE: dict[str, Any] = {
    "client_name": "Some CLI",
    "redirect_uris": [LOOPBACK],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}
CONFIDENTIAL: dict[str, Any] = {
    "client_name": "A web app",
    "redirect_uris": ["https://app.example/callback"],
    "token_endpoint_auth_method": "client_secret_basic",
}
MCP_SERVER = "https://mcp.example/mcp"


async def client_row(pool: asyncpg.Pool, client_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT registration, first_party, admin, disabled, secret_hash, metadata::text "
        "FROM clients WHERE client_id = $1",
        client_id,
    )
    assert row is not None
    return row


async def test_open_registers_a_public_loopback_client_as_dynamic(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance(dcr="open") as app:
        answer = await app.client.post(REGISTER, json={**NATIVE, "logo_uri": "https://a.example/l"})
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert "client_secret" not in body
    assert body["token_endpoint_auth_method"] == "none"
    assert body["registration_access_token"]
    assert body["registration_client_uri"] == f"{settings.issuer}{REGISTER}/{body['client_id']}"
    assert body["redirect_uris"] == [LOOPBACK]
    assert body["logo_uri"] == "https://a.example/l"
    row = await client_row(pool, body["client_id"])
    assert (row["registration"], row["first_party"], row["admin"]) == ("dynamic", False, False)
    audit = await pool.fetchrow(
        "SELECT actor, subject FROM audit_log WHERE action = $1", "client.registered"
    )
    assert audit is not None
    assert audit["actor"].startswith("dcr:")
    assert audit["subject"] == body["client_id"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"token_endpoint_auth_method": "client_secret_basic"}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "client_secret_post"}, "invalid_client_metadata"),
        ({"grant_types": ["client_credentials"], "response_types": []}, "invalid_client_metadata"),
        ({"grant_types": ["authorization_code", "client_credentials"]}, "invalid_client_metadata"),
        ({"redirect_uris": ["http://app.example/callback"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://localhost.evil.example/callback"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://localhost@evil.example/callback"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://localhost./callback"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1.nip.io/callback"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example@evil.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["data:text/html,<script>alert(1)</script>"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example/" + "a" * 2000]}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"first_party": True}, "invalid_client_metadata"),
        ({"admin": True}, "invalid_client_metadata"),
        ({"scope": "openid idp:admin"}, "invalid_client_metadata"),
        ({"logo_uri": "javascript:alert(1)"}, "invalid_client_metadata"),
        ({"client_uri": "http://app.example"}, "invalid_client_metadata"),
        ({"client_name": "evil\u202enam"}, "invalid_client_metadata"),
        ({"software_statement": "e30.e30.sig"}, "invalid_software_statement"),
    ],
)
async def test_open_refuses_what_is_not_a_public_native_client(
    app_instance: InstanceFactory, pool: asyncpg.Pool, change: dict[str, Any], error: str
) -> None:
    async with app_instance(dcr="open") as app:
        answer = await app.client.post(REGISTER, json={**NATIVE, **change})
    assert_oauth_error(answer, 400, error)
    assert answer.headers["cache-control"] == "no-store"
    assert await pool.fetchval("SELECT count(*) FROM clients") == 0


async def test_open_accepts_private_use_schemes_and_https(app_instance: InstanceFactory) -> None:
    uris = ["com.example.app:/callback", "https://app.example/cb", "http://[::1]:8123/cb"]
    async with app_instance(dcr="open") as app:
        answer = await app.client.post(REGISTER, json={**NATIVE, "redirect_uris": uris})
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(
    "registered",
    ["http://localhost:33418/callback", "http://LOCALHOST:33418/callback"],
    ids=["as-mcp-clients-write-it", "in-capitals"],
)
async def test_open_registers_localhost_and_the_code_arrives_on_another_port(
    registered: str, app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    """What MCP clients register (Claude Code, mcp-remote, the MCP SDKs), then a new port on the
    next run: the host ignores case, the port is free (RFC 8252 §7.3, §8.3; RFC 3986 §3.2.2)."""
    presented = "http://localhost:51234/callback"
    user = await make_user(pool)
    async with app_instance(dcr="open") as app:
        answer = await app.client.post(REGISTER, json={**NATIVE, "redirect_uris": [registered]})
        assert answer.status_code == 201, answer.text
        assert answer.json()["redirect_uris"] == [registered]
        auth = Authorization(answer.json()["client_id"], presented, scope="openid")
        location = await walk_hosted_login(app.client, auth.url(), presented, user.email, PASSWORD)
        tokens = await exchange_code_public(app.client, query_of(location)["code"], auth)
    assert location.startswith(f"{presented}?"), location
    assert query_of(location)["state"] == auth.state
    assert tokens.status_code == 200, tokens.text


async def test_token_registers_localhost_only_for_a_client_without_a_secret(
    app_instance: InstanceFactory, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    """A client with a secret is a web server an operator sets up: https or 127.0.0.1."""
    token = await issue(pool, clock, 2, timedelta(hours=1))
    localhost = {"redirect_uris": ["http://localhost:33418/callback"]}
    async with app_instance(dcr="token") as app:
        confidential = await app.client.post(
            REGISTER, json={**CONFIDENTIAL, **localhost}, headers=bearer(token)
        )
        native = await app.client.post(
            REGISTER, json={**NATIVE, **localhost}, headers=bearer(token)
        )
    assert_oauth_error(confidential, 400, "invalid_redirect_uri")
    assert "native apps without a secret" in confidential.json()["error_description"]
    assert native.status_code == 201, native.text
    assert await pool.fetchval("SELECT count(*) FROM clients") == 1


async def test_closed_has_no_registration_endpoint(app_instance: InstanceFactory) -> None:
    async with app_instance(dcr="closed") as app:
        answer = await app.client.post(REGISTER, json=NATIVE)
        metadata = (await app.client.get("/.well-known/oauth-authorization-server")).json()
    assert answer.status_code == 404
    assert "registration_endpoint" not in metadata


@pytest.mark.parametrize("policy", ["open", "token"])
async def test_discovery_lists_the_registration_endpoint_when_registration_is_on(
    app_instance: InstanceFactory, settings: Settings, policy: str
) -> None:
    async with app_instance(dcr=policy) as app:
        metadata = (await app.client.get("/.well-known/openid-configuration")).json()
    assert metadata["registration_endpoint"] == settings.issuer + REGISTER


async def test_open_registrations_are_rate_limited_per_ip(app_instance: InstanceFactory) -> None:
    refused = {**NATIVE, "redirect_uris": ["javascript:x"]}  # refusals count too
    async with app_instance(dcr="open") as app:
        answers = [await app.client.post(REGISTER, json=refused) for _ in range(20)]
        limited = await app.client.post(REGISTER, json=NATIVE)
    assert {answer.status_code for answer in answers} == {400}
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0


async def issue(pool: asyncpg.Pool, clock: FrozenClock, uses: int | None, ttl: timedelta) -> str:
    issued = await initial_tokens.issue(pool, now=clock.now(), ttl=ttl, uses=uses, actor="test")
    return issued.token


async def test_token_needs_an_initial_access_token(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    async with app_instance(dcr="token") as app:
        missing = await app.client.post(REGISTER, json=NATIVE)
        forged = await app.client.post(REGISTER, json=NATIVE, headers=bearer("not-a-token"))
    assert_oauth_error(missing, 401, "invalid_token")
    assert_oauth_error(forged, 401, "invalid_token")
    assert missing.headers["www-authenticate"].startswith("Bearer")


async def test_token_registers_a_confidential_client_but_never_first_party(
    app_instance: InstanceFactory, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    token = await issue(pool, clock, 3, timedelta(hours=1))
    async with app_instance(dcr="token") as app:
        answer = await app.client.post(REGISTER, json=CONFIDENTIAL, headers=bearer(token))
        first_party = await app.client.post(
            REGISTER, json={**CONFIDENTIAL, "first_party": True}, headers=bearer(token)
        )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["client_secret"]
    assert body["client_secret_expires_at"] == 0
    row = await client_row(pool, body["client_id"])
    assert row["secret_hash"] is not None
    assert row["registration"] == "dynamic"
    assert_oauth_error(first_party, 400, "invalid_client_metadata")
    assert await pool.fetchval("SELECT uses_left FROM initial_access_tokens") == 2, (
        "a refused registration gives its use back"
    )
    actor = await pool.fetchval("SELECT actor FROM audit_log WHERE action = 'client.registered'")
    assert actor == "dcr:initial-token"


async def test_token_registers_a_job_that_gets_tokens_for_an_allow_listed_resource(
    app_instance: InstanceFactory, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    token = await issue(pool, clock, 1, timedelta(hours=1))
    job = {"grant_types": ["client_credentials"], "response_types": [], "scope": "profile"}
    async with app_instance(dcr="token", resources=(MCP_SERVER,)) as app:
        client = await registered(app.client, job, headers=bearer(token))
        credentials = (client["client_id"], client["client_secret"])
        for_mcp = await app.client.post(
            "/token",
            auth=credentials,
            data={"grant_type": "client_credentials", "resource": MCP_SERVER, "scope": ""},
        )
        elsewhere = await app.client.post(
            "/token",
            auth=credentials,
            data={"grant_type": "client_credentials", "resource": "https://elsewhere.example"},
        )
        jwks = (await app.client.get("/jwks.json")).content
    assert for_mcp.status_code == 200, for_mcp.text
    claims = jwt.decode(for_mcp.json()["access_token"], keyset(jwks), algorithms=["RS256"]).claims
    assert claims["aud"] == MCP_SERVER
    assert_oauth_error(elsewhere, 400, "invalid_target")


async def test_token_refuses_a_used_up_and_an_expired_initial_token(
    app_instance: InstanceFactory, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    once = await issue(pool, clock, 1, timedelta(days=1))
    short = await issue(pool, clock, None, timedelta(minutes=5))
    async with app_instance(dcr="token") as app:
        first = await app.client.post(REGISTER, json=NATIVE, headers=bearer(once))
        second = await app.client.post(REGISTER, json=NATIVE, headers=bearer(once))
        fresh = await app.client.post(REGISTER, json=NATIVE, headers=bearer(short))
        clock.advance(timedelta(minutes=6))
        expired = await app.client.post(REGISTER, json=NATIVE, headers=bearer(short))
    assert first.status_code == 201, first.text
    assert_oauth_error(second, 401, "invalid_token")
    assert fresh.status_code == 201, fresh.text
    assert_oauth_error(expired, 401, "invalid_token")


async def test_an_initial_token_of_n_uses_registers_exactly_n_clients_under_concurrency(
    app_instance: InstanceFactory, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    uses = 4
    token = await issue(pool, clock, uses, timedelta(hours=1))
    async with app_instance(dcr="token") as app:
        answers = await asyncio.gather(
            *(
                app.client.post(REGISTER, json=NATIVE, headers=bearer(token))
                for _ in range(uses + 3)
            )
        )
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [201] * uses + [401] * 3
    assert await pool.fetchval("SELECT count(*) FROM clients") == uses


async def registered(
    app: httpx.AsyncClient, body: dict[str, Any] = NATIVE, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    answer = await app.post(REGISTER, json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    registration: dict[str, Any] = answer.json()
    return registration


async def test_rfc7592_reads_updates_and_deletes_only_with_the_registration_token(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    async with app_instance(dcr="open") as app:
        mine = await registered(app.client)
        other = await registered(app.client)
        url = f"{REGISTER}/{mine['client_id']}"
        token = bearer(mine["registration_access_token"])
        wrong = bearer(other["registration_access_token"])
        for method in ("GET", "DELETE"):
            for headers in ({}, wrong, bearer("x")):
                refused = await app.client.request(method, url, headers=headers)
                assert refused.status_code == 401, (method, headers, refused.text)
                assert refused.json()["error"] == "invalid_token"
        update = {**NATIVE, "client_id": mine["client_id"], "client_name": "Renamed"}
        refused = await app.client.put(url, json=update, headers=wrong)
        assert refused.status_code == 401

        read = await app.client.get(url, headers=token)
        assert read.status_code == 200, read.text
        assert read.json()["client_name"] == "Some CLI"
        assert "registration_access_token" not in read.json()
        updated = await app.client.put(url, json=update, headers=token)
        assert updated.status_code == 200, updated.text
        assert updated.json()["client_name"] == "Renamed"
        mismatched = await app.client.put(
            url, json={**update, "client_id": other["client_id"]}, headers=token
        )
        assert_oauth_error(mismatched, 400, "invalid_client_metadata")
        javascript = await app.client.put(
            url, json={**update, "redirect_uris": ["javascript:x"]}, headers=token
        )
        assert_oauth_error(javascript, 400, "invalid_redirect_uri")

        deleted = await app.client.delete(url, headers=token)
        assert deleted.status_code == 204
        gone = await app.client.get(url, headers=token)
        assert gone.status_code == 401
        authorize = await app.client.get(Authorization(mine["client_id"], LOOPBACK).url())
    assert authorize.status_code == 400, "a deleted client is unknown to /authorize"
    assert (await client_row(pool, mine["client_id"]))["disabled"]


async def test_rfc7592_delete_stops_the_clients_tokens(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    user = await make_user(pool)
    async with app_instance(dcr="open") as app:
        client = await registered(app.client)
        auth = Authorization(client["client_id"], LOOPBACK, scope="openid offline_access")
        location = await walk_hosted_login(app.client, auth.url(), LOOPBACK, user.email, PASSWORD)
        tokens = await exchange_code_public(app.client, query_of(location)["code"], auth)
        assert tokens.status_code == 200, tokens.text
        access = bearer(tokens.json()["access_token"])
        assert (await app.client.get("/userinfo", headers=access)).status_code == 200
        url = f"{REGISTER}/{client['client_id']}"
        deleted = await app.client.delete(url, headers=bearer(client["registration_access_token"]))
        assert deleted.status_code == 204
        for _ in range(100):  # the deny list hears of it through NOTIFY
            userinfo = await app.client.get("/userinfo", headers=access)
            if userinfo.status_code == 401:
                break
            await asyncio.sleep(0.02)
        refreshed = await app.client.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens.json()["refresh_token"],
                "client_id": client["client_id"],
            },
        )
    assert userinfo.status_code == 401
    assert refreshed.status_code in (400, 401)
    assert refreshed.json()["error"] in ("invalid_client", "invalid_grant")
    revoked = await pool.fetchval("SELECT revoked_at FROM refresh_families")
    assert revoked is not None


async def test_rfc7592_never_reveals_whether_a_client_exists_or_manages_operator_clients(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    operator, _ = await make_client(pool, settings)
    async with app_instance(dcr="open") as app:
        mine = await registered(app.client)
        token = bearer(mine["registration_access_token"])
        unknown = await app.client.get(f"{REGISTER}/no-such-client", headers=token)
        of_operator = await app.client.get(f"{REGISTER}/{operator.client_id}", headers=token)
        deleted = await app.client.delete(f"{REGISTER}/{operator.client_id}", headers=token)
    assert unknown.status_code == of_operator.status_code == deleted.status_code == 401
    assert unknown.json() == of_operator.json()
    assert not (await client_row(pool, operator.client_id))["disabled"]


async def test_a_registered_client_gets_a_token_for_an_allow_listed_resource_only(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool)
    async with app_instance(dcr="open", resources=(MCP_SERVER,)) as app:
        client = await registered(app.client)
        other = Authorization(client["client_id"], LOOPBACK, scope="profile")
        refused = await app.client.get(other.url(resource="https://elsewhere.example/"))
        auth = Authorization(client["client_id"], LOOPBACK, scope="profile")
        location = await walk_hosted_login(
            app.client, auth.url(resource=MCP_SERVER), LOOPBACK, user.email, PASSWORD
        )
        answer = await app.client.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": query_of(location)["code"],
                "redirect_uri": LOOPBACK,
                "code_verifier": auth.verifier,
                "client_id": client["client_id"],
                "resource": MCP_SERVER,
            },
        )
        jwks = (await app.client.get("/jwks.json")).content
    assert query_of(refused.headers["location"])["error"] == "invalid_target"
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], keyset(jwks), algorithms=["RS256"]).claims
    assert claims["aud"] == MCP_SERVER


async def test_an_operator_client_cannot_name_an_allow_listed_resource(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client, secret = await make_client(
        pool, settings, grant_types=("client_credentials",), redirect_uris=()
    )
    async with app_instance(dcr="open", resources=(MCP_SERVER,)) as app:
        answer = await app.client.post(
            "/token",
            auth=(client.client_id, secret),
            data={"grant_type": "client_credentials", "resource": MCP_SERVER},
        )
    assert_oauth_error(answer, 400, "invalid_target")


async def test_resources_added_at_run_time_are_allowed_without_a_restart(
    app_instance: InstanceFactory, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    from idp.admin import resources

    async with app_instance(dcr="open") as app:
        client = await registered(app.client)
        auth = Authorization(client["client_id"], LOOPBACK, scope="profile")
        before = await app.client.get(auth.url(resource=MCP_SERVER))
        await resources.add(pool, MCP_SERVER, now=clock.now(), actor="test")
        for _ in range(100):  # the NOTIFY reaches the listener
            after = await app.client.get(auth.url(resource=MCP_SERVER))
            if "invalid_target" not in after.headers["location"]:
                break
            await asyncio.sleep(0.02)
    assert query_of(before.headers["location"])["error"] == "invalid_target"
    assert after.headers["location"].startswith("/login")


async def test_rfc7592_update_checks_a_client_secret_sent_with_it(
    app_instance: InstanceFactory, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    token = await issue(pool, clock, 1, timedelta(hours=1))
    async with app_instance(dcr="token") as app:
        client = await registered(app.client, CONFIDENTIAL, headers=bearer(token))
        url = f"{REGISTER}/{client['client_id']}"
        manage = bearer(client["registration_access_token"])
        update = {**CONFIDENTIAL, "client_id": client["client_id"], "client_name": "Renamed"}
        wrong = await app.client.put(url, json={**update, "client_secret": "x"}, headers=manage)
        public = await app.client.put(
            url, json={**update, "token_endpoint_auth_method": "none"}, headers=manage
        )
        right = await app.client.put(
            url, json={**update, "client_secret": client["client_secret"]}, headers=manage
        )
    assert_oauth_error(wrong, 400, "invalid_client_metadata")
    assert_oauth_error(public, 400, "invalid_client_metadata")
    assert right.status_code == 200, right.text
    assert right.json()["client_name"] == "Renamed"
    assert "client_secret" not in right.json()
