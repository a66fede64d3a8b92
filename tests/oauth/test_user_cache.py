"""The user cache behind /userinfo, /introspect and refreshes: a change to a user, however it is
made, reaches every process by NOTIFY (a trigger), and without the LISTEN connection the
database is read instead."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.oauth.flow import App, app_with_refresh

pytestmark = pytest.mark.usefixtures("real_time")


async def email_at_userinfo(app: App, access_token: str) -> tuple[int, str | None]:
    response = await app.http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code, response.json().get("email")


async def test_a_change_by_plain_sql_reaches_userinfo_and_introspection_within_a_second(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        tokens = await app.sign_in(scope="openid email")
        assert await email_at_userinfo(app, tokens["access_token"]) == (200, app.email)
        assert instance.state["listener"].connected.is_set()

        await pool.execute("UPDATE users SET email = 'alice@new.example'")
        deadline = time.monotonic() + 1
        while await email_at_userinfo(app, tokens["access_token"]) != (200, "alice@new.example"):
            assert time.monotonic() < deadline, "the old email still served after 1 s"
            await asyncio.sleep(0.01)

        await pool.execute("UPDATE users SET disabled = true")
        deadline = time.monotonic() + 1
        while (await email_at_userinfo(app, tokens["access_token"]))[0] != 401:
            assert time.monotonic() < deadline, "a disabled user's token still works after 1 s"
            await asyncio.sleep(0.01)
        introspected = await instance.client.post(
            "/introspect",
            auth=(app.client_id, app.secret),
            data={"token": tokens["access_token"]},
        )
        assert introspected.json() == {"active": False}


async def test_without_its_listen_connection_userinfo_reads_the_database(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        app = await app_with_refresh(instance, pool, settings)
        tokens = await app.sign_in(scope="openid email")
        assert await email_at_userinfo(app, tokens["access_token"]) == (200, app.email)
        await instance.state["listener"].stop()  # changes can no longer be announced

        await pool.execute("UPDATE users SET email = 'alice@new.example'")
        assert await email_at_userinfo(app, tokens["access_token"]) == (200, "alice@new.example")
