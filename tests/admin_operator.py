"""An operator's deployment tool in tests: an admin client's token and the calls it makes to
the management API, and the audit events they leave."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from idp.settings import Settings
from tests.admin_api import PREFIX, admin_caller, bearer
from tests.conftest import Instance


class Operator:
    """An admin client's token, and the calls a deployment tool makes with it."""

    def __init__(self, instance: Instance, token: str, actor: str) -> None:
        self.http = instance.client
        self.actor = actor
        self.token = token

    def headers(self, **more: str) -> dict[str, str]:
        return bearer(self.token, **more)

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(PREFIX + path, headers=self.headers())

    async def post(self, path: str, body: Any = None) -> httpx.Response:
        if body is None:
            return await self.http.post(PREFIX + path, headers=self.headers())
        return await self.http.post(PREFIX + path, json=body, headers=self.headers())

    async def patch(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return await self.http.patch(PREFIX + path, json=body, headers=self.headers(**headers))

    async def delete(self, path: str, **headers: str) -> httpx.Response:
        return await self.http.delete(PREFIX + path, headers=self.headers(**headers))


async def operator(instance: Instance, settings: Settings, *, scope: str = "idp:admin") -> Operator:
    token, actor = await admin_caller(
        instance.client, instance.state["pool"], settings, scope=scope
    )
    return Operator(instance, token, actor)


async def audit(pool: asyncpg.Pool, action_prefix: str = "client.") -> list[tuple[str, str, str]]:
    rows = await pool.fetch(
        "SELECT action, actor, subject FROM audit_log WHERE action LIKE $1 ORDER BY id",
        action_prefix + "%",
    )
    return [(row["action"], row["actor"], row["subject"]) for row in rows]
