"""The in-memory deny-list behind /introspect: fed by NOTIFY from any process and by this
process's own revocations once they commit, trusted only while it is known complete, and the
database asked otherwise."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import jwt as pyjwt
import pytest

from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.factories import make_client
from tests.faults import audited_commits_fail
from tests.oauth.flow import App, app_with_refresh, deny_lists_trusted, introspect

pytestmark = pytest.mark.usefixtures("real_time")

DENY = "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2)"


@dataclass(frozen=True)
class Introspected:
    """A client's live access token, its jti, and a resource server that introspects it."""

    instance: Instance
    resource_server: tuple[str, str]
    token: str
    jti: str

    async def active(self) -> bool:
        answer = await self.instance.client.post(
            "/introspect", auth=self.resource_server, data={"token": self.token}
        )
        assert answer.status_code == 200, answer.text
        is_active: bool = answer.json()["active"]
        return is_active


async def introspected(instance: Instance, pool: asyncpg.Pool, settings: Settings) -> Introspected:
    machine, secret = await make_client(
        pool, settings, name="machine", audiences=("https://api.example",)
    )
    rs, rs_secret = await make_client(
        pool, settings, name="api", introspect_audiences=("https://api.example",)
    )
    issued = await instance.client.post(
        "/token", auth=(machine.client_id, secret), data={"grant_type": "client_credentials"}
    )
    token: str = issued.json()["access_token"]
    jti: str = pyjwt.decode(token, options={"verify_signature": False})["jti"]
    return Introspected(instance, (rs.client_id, rs_secret), token, jti)


async def test_a_revocation_written_elsewhere_reaches_memory_by_notify(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        deny_list = instance.state["token_context"].deny_list
        probe = await introspected(instance, pool, settings)
        deadline = time.monotonic() + 5
        while not deny_list.trusted:
            assert time.monotonic() < deadline, "the deny-list never loaded"
            await asyncio.sleep(0.01)
        assert await probe.active()

        # Another process deny-lists it (its own /revoke, or the CLI): only NOTIFY tells us.
        await pool.execute(DENY, probe.jti, datetime.now(UTC) + timedelta(hours=1))
        deadline = time.monotonic() + 1
        while await probe.active():
            assert time.monotonic() < deadline, "not inactive within 1 s of the revocation"
            await asyncio.sleep(0.01)

        # From memory: with the row gone, the answer stays (until a reload would drop it).
        await pool.execute("DELETE FROM revoked_access_tokens WHERE jti = $1", probe.jti)
        assert deny_list.trusted
        assert not await probe.active()


async def test_without_its_listen_connection_the_database_is_asked(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        deny_list = instance.state["token_context"].deny_list
        probe = await introspected(instance, pool, settings)
        await instance.state["listener"].stop()  # notifications can no longer arrive
        assert not deny_list.trusted

        await pool.execute(DENY, probe.jti, datetime.now(UTC) + timedelta(hours=1))
        assert not await probe.active()


async def active(app: App, token: str) -> bool:
    body = await introspect(app.http, (app.client_id, app.secret), token)
    return body["active"] is True


@pytest.mark.parametrize("revoked", ["refresh_token", "access_token"])
async def test_a_revocation_whose_commit_fails_leaves_the_token_accepted_here_and_elsewhere(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, revoked: str
) -> None:
    """The deny-list learns a revocation only once its transaction has committed: a failed
    one (here its COMMIT fails, every statement before it done) leaves this process accepting
    what the database and every other process still accept."""
    async with app_instance() as here, app_instance() as elsewhere:
        app = await app_with_refresh(here, pool, settings)
        tokens = await app.sign_in()
        other = App(elsewhere, app.client_id, app.secret, app.email)
        await deny_lists_trusted(here, elsewhere)

        async with audited_commits_fail(pool):
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                await app.http.post(
                    "/revoke", auth=(app.client_id, app.secret), data={"token": tokens[revoked]}
                )

        assert await pool.fetchval("SELECT count(*) FROM revoked_access_tokens") == 0
        await deny_lists_trusted(here, elsewhere)  # from memory, not the database
        for instance in (app, other):
            assert await active(instance, tokens["access_token"])
            assert await active(instance, tokens["refresh_token"])


@pytest.mark.parametrize("revoked", ["refresh_token", "access_token"])
async def test_a_committed_revocation_is_refused_at_once_here_and_by_notify_elsewhere(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, revoked: str
) -> None:
    async with app_instance() as here, app_instance() as elsewhere:
        app = await app_with_refresh(here, pool, settings)
        tokens = await app.sign_in()
        other = App(elsewhere, app.client_id, app.secret, app.email)
        await deny_lists_trusted(here, elsewhere)
        assert await active(other, tokens["access_token"])

        response = await app.http.post(
            "/revoke", auth=(app.client_id, app.secret), data={"token": tokens[revoked]}
        )
        assert response.status_code == 200, response.text
        assert not await active(app, tokens["access_token"]), "refused by this process at once"
        deadline = time.monotonic() + 1
        while await active(other, tokens["access_token"]):
            assert time.monotonic() < deadline, "not refused elsewhere within 1 s"
            await asyncio.sleep(0.01)
        await deny_lists_trusted(here, elsewhere)
