"""``/admin/v1/initial-tokens``: RFC 7591 §3 initial access tokens for ``IDP_DCR=token``, issued
through the same service function as ``idp clients initial-token``, listed and revoked."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from idp.admin import initial_tokens
from idp.clock import FrozenClock
from idp.hashing import digest
from idp.settings import Settings
from tests.admin_api import PREFIX, admin_caller, audit_of, bearer, problem
from tests.conftest import InstanceFactory

REGISTRATION: dict[str, Any] = {
    "client_name": "A web app",
    "redirect_uris": ["https://app.example/callback"],
    "token_endpoint_auth_method": "client_secret_basic",
}


async def _register(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/oauth2/register", json=REGISTRATION, headers=bearer(token))


async def test_a_token_issued_through_the_api_is_shown_once_stored_as_a_digest_and_registers(
    app_instance: InstanceFactory, settings: Settings, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    async with app_instance(admin_api=True, dcr="token") as instance:
        token, actor = await admin_caller(instance.client, pool, settings)
        issued = await instance.client.post(
            f"{PREFIX}/initial-tokens", json={"expires_in": 3600, "uses": 1}, headers=bearer(token)
        )
        assert issued.status_code == 201, issued.text
        body = issued.json()
        shown = await instance.client.get(issued.headers["location"], headers=bearer(token))
        listed = await instance.client.get(f"{PREFIX}/initial-tokens", headers=bearer(token))
        first = await _register(instance.client, body["token"])
        second = await _register(instance.client, body["token"])
    assert issued.headers["location"] == f"{PREFIX}/initial-tokens/{body['id']}"
    assert issued.headers["cache-control"] == "no-store"
    row = await pool.fetchrow(
        "SELECT token_hash, expires_at, created_by FROM initial_access_tokens WHERE id = $1::uuid",
        body["id"],
    )
    assert row is not None
    assert row["token_hash"] == digest(body["token"])
    assert row["expires_at"] == clock.now() + timedelta(hours=1)
    assert row["created_by"] == actor
    assert (body["uses_left"], body["created_by"]) == (1, actor)
    assert shown.status_code == 200
    assert "token" not in shown.json()  # shown once: in the 201 only
    assert shown.json() == {key: value for key, value in body.items() if key != "token"}
    assert [item["id"] for item in listed.json()["items"]] == [body["id"]]
    assert "token" not in listed.json()["items"][0]
    assert first.status_code == 201, first.text
    assert second.status_code == 401  # its one use is spent
    assert await audit_of(pool, body["id"]) == [(actor, "initial_token.issued")]


async def test_a_revoked_token_registers_nothing(
    app_instance: InstanceFactory, settings: Settings, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    # Issued as `idp clients initial-token` does; revoked through the API.
    issued = await initial_tokens.issue(
        pool, now=clock.now(), ttl=timedelta(days=1), uses=None, actor="cli:test"
    )
    url = f"{PREFIX}/initial-tokens/{issued.record.id}"
    async with app_instance(admin_api=True, dcr="token") as instance:
        token, actor = await admin_caller(instance.client, pool, settings)
        revoked = await instance.client.delete(url, headers=bearer(token))
        registration = await _register(instance.client, issued.token)
        again = await instance.client.delete(url, headers=bearer(token))
        not_an_id = await instance.client.delete(
            f"{PREFIX}/initial-tokens/nope", headers=bearer(token)
        )
    assert revoked.status_code == 204, revoked.text
    assert registration.status_code == 401
    problem(again, 404)
    problem(not_an_id, 404)
    assert await pool.fetchval("SELECT count(*) FROM initial_access_tokens") == 0
    assert await audit_of(pool, issued.record.id) == [
        ("cli:test", "initial_token.issued"),
        (actor, "initial_token.revoked"),
    ]


async def test_tokens_are_listed_newest_first_page_by_page(
    app_instance: InstanceFactory, settings: Settings, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    ids = []
    for _ in range(3):
        issued = await initial_tokens.issue(
            pool, now=clock.now(), ttl=timedelta(days=1), uses=2, actor="cli:test"
        )
        ids.append(str(issued.record.id))
        clock.advance(timedelta(seconds=1))
    async with app_instance(admin_api=True) as instance:
        token, _ = await admin_caller(instance.client, pool, settings, scope="idp:admin.read")
        first = await instance.client.get(f"{PREFIX}/initial-tokens?limit=2", headers=bearer(token))
        assert first.status_code == 200, first.text
        second = await instance.client.get(
            f"{PREFIX}/initial-tokens",
            params={"limit": 2, "cursor": first.json()["next_cursor"]},
            headers=bearer(token),
        )
        bad_cursor = await instance.client.get(
            f"{PREFIX}/initial-tokens?cursor=WyJ4IiwieSJd", headers=bearer(token)
        )
    assert second.status_code == 200, second.text
    listed = [item["id"] for page in (first, second) for item in page.json()["items"]]
    assert listed == ids[::-1]
    assert second.json()["next_cursor"] is None
    problem(bad_cursor, 400)


async def test_out_of_bounds_bodies_are_problems_and_store_nothing(
    app_instance: InstanceFactory, settings: Settings, pool: asyncpg.Pool
) -> None:
    bodies: list[object] = [
        {"expires_in": 0},
        {"expires_in": 366 * 86400},
        {"expires_in": "3600"},
        {"uses": 0},
        {"uses": "2"},
        {"uses": True},
        {"expires": "1d"},
        [],
    ]
    async with app_instance(admin_api=True) as instance:
        token, _ = await admin_caller(instance.client, pool, settings)
        refused = [
            await instance.client.post(f"{PREFIX}/initial-tokens", json=body, headers=bearer(token))
            for body in bodies
        ]
        defaults = await instance.client.post(
            f"{PREFIX}/initial-tokens", json={}, headers=bearer(token)
        )
    for answer in refused:
        problem(answer, 400)
    assert defaults.status_code == 201, defaults.text
    assert defaults.json()["uses_left"] is None  # any number, for a day: the CLI's defaults
    assert await pool.fetchval("SELECT count(*) FROM initial_access_tokens") == 1


async def test_a_read_only_token_lists_tokens_but_may_not_issue_or_revoke(
    app_instance: InstanceFactory, settings: Settings, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    issued = await initial_tokens.issue(
        pool, now=clock.now(), ttl=timedelta(days=1), uses=None, actor="cli:test"
    )
    async with app_instance(admin_api=True) as instance:
        token, _ = await admin_caller(instance.client, pool, settings, scope="idp:admin.read")
        listed = await instance.client.get(f"{PREFIX}/initial-tokens", headers=bearer(token))
        issue = await instance.client.post(
            f"{PREFIX}/initial-tokens", json={}, headers=bearer(token)
        )
        revoke = await instance.client.delete(
            f"{PREFIX}/initial-tokens/{issued.record.id}", headers=bearer(token)
        )
    assert listed.status_code == 200
    problem(issue, 403)
    problem(revoke, 403)
    assert await pool.fetchval("SELECT count(*) FROM initial_access_tokens") == 1
