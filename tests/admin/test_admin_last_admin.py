"""The last administrator (idp.admin.last_admin) through ``/admin/v1/users``: deleting,
disabling or taking the admin role from the only enabled user holding it gets a 409
``urn:idp:problem:last-admin`` and changes nothing; two such changes at once never both pass."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from idp.settings import Settings
from tests.admin_api import PREFIX, admin_caller, audit_of, bearer, problem, user_admin_token
from tests.conftest import InstanceFactory
from tests.factories import make_user

LAST_ADMIN = "urn:idp:problem:last-admin"
# Each way an operator can end a user as an admin: (method, path suffix, PATCH body).
ENDINGS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "delete": ("DELETE", "", None),
    "disable": ("POST", "/disable", None),
    "patch roles without admin": ("PATCH", "", {"roles": ["ops"]}),
    "patch no roles": ("PATCH", "", {"roles": []}),
}


@dataclass
class Api:
    """An app with the management API on, called with an admin *client*'s token."""

    http: httpx.AsyncClient
    pool: asyncpg.Pool
    token: str

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = bearer(self.token, **kwargs.pop("headers", {}))
        return await self.http.request(method, PREFIX + path, headers=headers, **kwargs)

    async def end(self, ending: str, user_id: uuid.UUID, etag: str | None = None) -> httpx.Response:
        """``ending`` applied to the user; a PATCH sends ``etag`` (read now when None)."""
        method, suffix, body = ENDINGS[ending]
        if method != "PATCH":
            return await self.call(method, f"/users/{user_id}{suffix}")
        if etag is None:
            etag = await self.etag(user_id)
        return await self.call("PATCH", f"/users/{user_id}", json=body, headers={"If-Match": etag})

    async def etag(self, user_id: uuid.UUID) -> str:
        answer = await self.call("GET", f"/users/{user_id}")
        assert answer.status_code == 200, answer.text
        return answer.headers["etag"]

    async def enabled_admins(self) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT email FROM users WHERE 'admin' = ANY(roles) AND NOT disabled ORDER BY email"
        )
        return [row["email"] for row in rows]


@pytest.fixture
async def api(app_instance: InstanceFactory, settings: Settings) -> AsyncIterator[Api]:
    async with app_instance(admin_api=True) as instance:
        pool = instance.state["pool"]
        token, _ = await admin_caller(instance.client, pool, settings)
        yield Api(instance.client, pool, token)


def assert_last_admin(answer: httpx.Response, email: str) -> None:
    body = problem(answer, 409)
    assert body["type"] == LAST_ADMIN
    assert body["title"] == "Last administrator"
    assert email in body["detail"]
    assert "last enabled user with the admin role" in body["detail"]


@pytest.mark.parametrize("ending", ENDINGS)
async def test_ending_the_only_admin_user_gets_409_last_admin_and_changes_nothing(
    api: Api, ending: str
) -> None:
    """The caller is an admin client: clients do not count as the other admin."""
    root = await make_user(api.pool, "root@example.com", roles=("admin", "ops"))
    await make_user(api.pool, "bob@example.com", roles=("ops",))

    answer = await api.end(ending, root.id)

    assert_last_admin(answer, "root@example.com")
    row = await api.pool.fetchrow("SELECT roles, disabled FROM users WHERE id = $1", root.id)
    assert row is not None
    assert (list(row["roles"]), row["disabled"]) == (["admin", "ops"], False)
    assert await audit_of(api.pool, root.id) == []


@pytest.mark.parametrize("ending", ENDINGS)
async def test_with_another_enabled_admin_user_the_admin_can_be_ended(
    api: Api, ending: str
) -> None:
    root = await make_user(api.pool, "root@example.com", roles=("admin",))
    await make_user(api.pool, "second@example.com", roles=("admin",))

    answer = await api.end(ending, root.id)

    assert answer.status_code in (200, 204), answer.text
    assert await api.enabled_admins() == ["second@example.com"]


@pytest.mark.parametrize("ending", ENDINGS)
async def test_a_disabled_admin_user_is_not_the_admin_who_remains(api: Api, ending: str) -> None:
    root = await make_user(api.pool, "root@example.com", roles=("admin",))
    dormant = await make_user(api.pool, "dormant@example.com", roles=("admin",))
    assert (await api.call("POST", f"/users/{dormant.id}/disable")).status_code == 200

    assert_last_admin(await api.end(ending, root.id), "root@example.com")
    assert await api.enabled_admins() == ["root@example.com"]


async def test_the_last_admin_can_still_be_renamed_or_given_more_roles(api: Api) -> None:
    root = await make_user(api.pool, "root@example.com", roles=("admin",))

    answer = await api.call(
        "PATCH",
        f"/users/{root.id}",
        json={"name": "Root", "roles": ["ops", "admin"]},
        headers={"If-Match": await api.etag(root.id)},
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["roles"] == ["admin", "ops"]


@pytest.mark.parametrize("ending", ENDINGS)
async def test_without_any_admin_user_an_admin_client_changes_users_freely(
    api: Api, ending: str
) -> None:
    """A fresh install run by an admin client alone: no admin user, nothing to protect."""
    bob = await make_user(api.pool, "bob@example.com", roles=("ops",))

    answer = await api.end(ending, bob.id)

    assert answer.status_code in (200, 204), answer.text


async def test_a_disabled_admin_user_is_not_protected_even_as_the_last_holder(api: Api) -> None:
    """Only an enabled admin is: a disabled one administers nothing, and may go."""
    dormant = await make_user(api.pool, "dormant@example.com", roles=("admin",))
    await api.pool.execute("UPDATE users SET disabled = true WHERE id = $1", dormant.id)

    for ending in ("patch roles without admin", "disable", "delete"):
        answer = await api.end(ending, dormant.id)
        assert answer.status_code in (200, 204), (ending, answer.text)


async def test_an_admin_user_cannot_disable_themselves_as_the_last_admin(
    api: Api, settings: Settings
) -> None:
    root = await make_user(api.pool, "root@example.com", roles=("admin",))
    token = await user_admin_token(api.http, api.pool, settings, "root@example.com")

    answer = await api.http.post(f"{PREFIX}/users/{root.id}/disable", headers=bearer(token))

    assert_last_admin(answer, "root@example.com")
    assert await api.enabled_admins() == ["root@example.com"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("delete", "delete"),
        ("disable", "disable"),
        ("patch roles without admin", "patch no roles"),
        ("delete", "disable"),
        ("disable", "patch roles without admin"),
    ],
)
async def test_two_admins_ended_at_once_exactly_one_wins(api: Api, first: str, second: str) -> None:
    """Two requests, each ending a different one of two admins: the second to take the lock
    counts after the first committed, so one admin remains."""
    for attempt in range(3):
        one = await make_user(api.pool, f"one{attempt}@example.com", roles=("admin",))
        two = await make_user(api.pool, f"two{attempt}@example.com", roles=("admin",))
        etags = [await api.etag(one.id), await api.etag(two.id)]

        answers = await asyncio.gather(
            api.end(first, one.id, etags[0]), api.end(second, two.id, etags[1])
        )

        statuses = sorted(answer.status_code for answer in answers)
        assert statuses in ([200, 409], [204, 409]), [answer.text for answer in answers]
        [lost] = [answer for answer in answers if answer.status_code == 409]
        assert lost.json()["type"] == LAST_ADMIN
        assert len(await api.enabled_admins()) == 1
        # Back to no admin user for the next attempt.
        await api.pool.execute("DELETE FROM users")
