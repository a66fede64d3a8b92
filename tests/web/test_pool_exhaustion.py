"""A request that needs the database while every pooled connection is busy answers 503 with
Retry-After within IDP_DATABASE_TIMEOUT: never a hang, never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta

import asyncpg

from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error, assert_security_headers, make_client

DATABASE_TIMEOUT = timedelta(seconds=1)
HANG_GUARD = 15.0  # seconds: far beyond the timeout; reaching it means the request hung
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def test_an_exhausted_pool_answers_503_with_retry_after_within_the_database_timeout(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    machine, secret = await make_client(pool, settings)
    revoke = {"token": "not-a-token"}
    async with app_instance(database_timeout=DATABASE_TIMEOUT) as instance:
        http = instance.client
        # The client is cached now: what follows waits for a connection in revoke() itself.
        assert (
            await http.post("/revoke", auth=(machine.client_id, secret), data=revoke)
        ).is_success
        app_pool = instance.state["pool"]
        async with contextlib.AsyncExitStack() as held:
            for _ in range(app_pool.get_max_size()):  # every connection, held by the test
                await held.enter_async_context(app_pool.acquire())
            started = time.monotonic()
            async with asyncio.timeout(HANG_GUARD):
                refused = await http.post("/revoke", auth=(machine.client_id, secret), data=revoke)
            took = time.monotonic() - started
            async with asyncio.timeout(HANG_GUARD):
                page = await http.get(
                    "/login", params={"request": "anything"}, headers={"Accept": BROWSER_ACCEPT}
                )
        again = await http.post("/revoke", auth=(machine.client_id, secret), data=revoke)

    limit = DATABASE_TIMEOUT.total_seconds()
    assert_oauth_error(refused, 503, "temporarily_unavailable")
    assert refused.headers["retry-after"] == "5"
    assert refused.headers["cache-control"] == "no-store"
    assert limit * 0.9 <= took < limit + 3.0, f"answered after {took:.1f}s"
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["retry-after"] == "5"
    assert_security_headers(page)
    assert again.is_success, "the pool serves again once its connections are back"
