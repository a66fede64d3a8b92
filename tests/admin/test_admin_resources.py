"""``/admin/v1/resources``: the resources (RFC 8707) registered clients may ask tokens for, as
``idp resources`` manages them, through the same service functions."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx

from idp.admin import resources
from idp.clock import FrozenClock
from idp.settings import Settings
from tests.admin_api import PREFIX, admin_caller, audit_of, bearer, problem
from tests.conftest import InstanceFactory
from tests.oauth.flow import Authorization, query_of

MCP = "https://mcp.example/mcp"
LOOPBACK = "http://127.0.0.1/callback"
NATIVE: dict[str, Any] = {
    "client_name": "Some CLI",
    "redirect_uris": [LOOPBACK],
    "token_endpoint_auth_method": "none",
}


async def _registered_auth(http: httpx.AsyncClient) -> Authorization:
    """An authorization request of a client registered at /oauth2/register (IDP_DCR=open)."""
    answer = await http.post("/oauth2/register", json=NATIVE)
    assert answer.status_code == 201, answer.text
    return Authorization(answer.json()["client_id"], LOOPBACK, scope="profile")


async def _allowed(http: httpx.AsyncClient, auth: Authorization) -> bool:
    answer = await http.get(auth.url(resource=MCP))
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    if location.startswith("/login"):
        return True
    assert query_of(location)["error"] == "invalid_target", location
    return False


async def _becomes(http: httpx.AsyncClient, auth: Authorization, wanted: bool) -> bool:
    """Whether the resource is allowed once the NOTIFY has reached the process (bounded)."""
    async with asyncio.timeout(10):
        # The registry drops what it read in the listener's own task, on the NOTIFY
        while await _allowed(http, auth) != wanted:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return wanted


async def test_a_resource_added_and_removed_through_the_api_counts_in_every_process(
    app_instance: InstanceFactory, settings: Settings, pool: asyncpg.Pool
) -> None:
    """The API's change goes through idp.admin.resources, which NOTIFYs idp_resources: every
    process's registry follows, the one that made the change and another."""
    async with (
        app_instance(admin_api=True, dcr="open") as admin,
        app_instance(dcr="open") as other,
    ):
        token, actor = await admin_caller(admin.client, pool, settings)
        here, there = await _registered_auth(admin.client), await _registered_auth(other.client)
        assert not await _allowed(admin.client, here)
        assert not await _allowed(other.client, there)
        added = await admin.client.post(
            f"{PREFIX}/resources", json={"url": MCP}, headers=bearer(token)
        )
        assert added.status_code == 201, added.text
        assert await _becomes(admin.client, here, True)
        assert await _becomes(other.client, there, True)
        resource = added.json()
        assert added.headers["location"] == f"{PREFIX}/resources/{resource['id']}"
        shown = await admin.client.get(added.headers["location"], headers=bearer(token))
        removed = await admin.client.delete(added.headers["location"], headers=bearer(token))
        assert removed.status_code == 204, removed.text
        assert await _becomes(admin.client, here, False) is False
        assert await _becomes(other.client, there, False) is False
        gone = await admin.client.get(added.headers["location"], headers=bearer(token))
    assert resource["url"] == MCP
    assert shown.status_code == 200
    assert shown.json() == resource
    problem(gone, 404)
    assert await audit_of(pool, MCP) == [(actor, "resource.added"), (actor, "resource.removed")]


async def test_resources_are_listed_in_url_order_page_by_page_beside_the_configured_ones(
    app_instance: InstanceFactory, settings: Settings, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    urls = ["https://c.example/", "https://a.example/", "https://b.example/"]
    for url in urls:  # as `idp resources add` does
        await resources.add(pool, url, now=clock.now(), actor="cli:test")
    configured = ("https://configured.example/api",)
    async with app_instance(admin_api=True, resources=configured) as instance:
        token, _ = await admin_caller(instance.client, pool, settings, scope="idp:admin.read")
        first = await instance.client.get(f"{PREFIX}/resources?limit=2", headers=bearer(token))
        assert first.status_code == 200, first.text
        cursor = first.json()["next_cursor"]
        second = await instance.client.get(
            f"{PREFIX}/resources", params={"limit": 2, "cursor": cursor}, headers=bearer(token)
        )
    assert second.status_code == 200, second.text
    listed = [item["url"] for page in (first, second) for item in page.json()["items"]]
    assert listed == sorted(urls)
    assert second.json()["next_cursor"] is None
    assert first.json()["configured"] == second.json()["configured"] == list(configured)


async def test_a_bad_or_repeated_resource_is_a_problem_and_changes_nothing(
    app_instance: InstanceFactory, settings: Settings, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    await resources.add(pool, MCP, now=clock.now(), actor="cli:test")
    async with app_instance(admin_api=True) as instance:
        token, actor = await admin_caller(instance.client, pool, settings)

        async def add(body: object) -> httpx.Response:
            return await instance.client.post(
                f"{PREFIX}/resources", json=body, headers=bearer(token)
            )

        fragment = await add({"url": "https://mcp.example/#part"})
        relative = await add({"url": "/mcp"})
        other_scheme = await add({"url": "ftp://mcp.example/"})
        unknown_member = await add({"url": "https://new.example/", "audience": "x"})
        again = await add({"url": MCP})
        not_an_id = await instance.client.delete(
            f"{PREFIX}/resources/{MCP.replace('/', '%2F')}", headers=bearer(token)
        )
        not_a_uuid = await instance.client.delete(f"{PREFIX}/resources/nope", headers=bearer(token))
        no_such = await instance.client.delete(
            f"{PREFIX}/resources/00000000-0000-4000-8000-000000000000", headers=bearer(token)
        )
        bad_cursor = await instance.client.get(
            f"{PREFIX}/resources?cursor=bm9wZQ", headers=bearer(token)
        )
    assert "RFC 8707" in problem(fragment, 400)["detail"]
    problem(relative, 400)
    problem(other_scheme, 400)
    assert problem(unknown_member, 400)["errors"][0]["pointer"] == "/audience"
    assert "registered already" in problem(again, 409)["detail"]
    # A URL, even encoded, is no resource's name: its %2F is decoded before routing, so the path
    # matches no route (why resources are named by id).
    assert not_an_id.status_code == 404
    problem(not_a_uuid, 404)
    problem(no_such, 404)
    problem(bad_cursor, 400)
    assert [item.url for item in await resources.all_resources(pool)] == [MCP]
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE actor = $1", actor) == 0


async def test_a_read_only_token_lists_resources_but_may_not_change_them(
    app_instance: InstanceFactory, settings: Settings, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    added = await resources.add(pool, MCP, now=clock.now(), actor="cli:test")
    async with app_instance(admin_api=True) as instance:
        token, _ = await admin_caller(instance.client, pool, settings, scope="idp:admin.read")
        listed = await instance.client.get(f"{PREFIX}/resources", headers=bearer(token))
        add = await instance.client.post(
            f"{PREFIX}/resources", json={"url": "https://new.example/"}, headers=bearer(token)
        )
        remove = await instance.client.delete(
            f"{PREFIX}/resources/{added.id}", headers=bearer(token)
        )
    assert [item["url"] for item in listed.json()["items"]] == [MCP]
    problem(add, 403)
    problem(remove, 403)
    assert [item.url for item in await resources.all_resources(pool)] == [MCP]
