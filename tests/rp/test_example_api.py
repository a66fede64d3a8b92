"""examples/api against a real idp: its user route, its admin route, its RFC 9728 document,
and the module-level app started the way its docstring says (uvicorn, env vars)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from mcp.shared.auth import ProtectedResourceMetadata

from examples.api.app import create_app
from idp.clock import FrozenClock
from tests.conftest import Served
from tests.rp.glue_stack import API, bearer, http, idp, user_token

__all__ = ["http", "idp"]  # fixtures

ROOT = Path(__file__).resolve().parents[2]
METADATA = "https://api.example/.well-known/oauth-protected-resource"


@pytest.fixture
async def api(
    idp: Served, clock: FrozenClock, http: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(idp.base_url, API, clock=clock, http=http)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=API) as client:
            yield client


async def test_the_greeting_answers_a_users_token_with_who_it_is(
    api: httpx.AsyncClient, idp: Served, pool: asyncpg.Pool
) -> None:
    token = await user_token(idp.base_url, pool, idp.settings, "bob@example.com", roles=["staff"])
    answer = await api.get("/api/greeting", headers=bearer(token))
    assert answer.status_code == 200
    body = answer.json()
    user_id = await pool.fetchval("SELECT id FROM users WHERE email = 'bob@example.com'")
    assert body == {"greeting": f"Hello, {user_id}!", "subject": str(user_id), "roles": ["staff"]}


async def test_the_greeting_without_a_token_is_401_pointing_at_the_metadata(
    api: httpx.AsyncClient,
) -> None:
    answer = await api.get("/api/greeting")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == f'Bearer resource_metadata="{METADATA}"'


async def test_the_admin_report_is_403_for_a_user_and_200_for_an_admin(
    api: httpx.AsyncClient, idp: Served, pool: asyncpg.Pool
) -> None:
    bob = await user_token(idp.base_url, pool, idp.settings, "bob@example.com")
    answer = await api.get("/api/admin/report", headers=bearer(bob))
    assert (answer.status_code, answer.json()["error"]) == (403, "insufficient_scope")
    ada = await user_token(idp.base_url, pool, idp.settings, "ada@example.com", roles=["admin"])
    answer = await api.get("/api/admin/report", headers=bearer(ada))
    assert answer.status_code == 200
    assert answer.json()["report"] == "all systems nominal"


async def test_the_metadata_names_idp_for_the_apis_identifier(
    api: httpx.AsyncClient, idp: Served
) -> None:
    """RFC 9728 §3.3: ``resource`` is the identifier the client derived the URL from."""
    answer = await api.get(METADATA)
    assert answer.status_code == 200
    assert answer.json() == {
        "resource": API,
        "authorization_servers": [idp.base_url],
        "bearer_methods_supported": ["header"],
        "resource_name": "Example API",
    }
    parsed = ProtectedResourceMetadata.model_validate(answer.json())  # as an MCP client reads it
    assert [str(url) for url in parsed.authorization_servers] == [idp.base_url]


async def test_uvicorn_runs_the_module_level_app_configured_by_the_environment(
    idp: Served, pool: asyncpg.Pool
) -> None:
    """``PYTHONPATH=rp uvicorn examples.api.app:app`` with IDP_ISSUER and API_AUDIENCE."""
    token = await user_token(idp.base_url, pool, idp.settings, "bob@example.com")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "rp"), "IDP_ISSUER": idp.base_url}
    env["API_AUDIENCE"] = API
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "uvicorn", "examples.api.app:app", "--port", str(port)),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(300):
                assert server.returncode is None, "uvicorn exited"
                try:
                    answer = await client.get("/api/greeting", headers=bearer(token))
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("uvicorn did not answer in 15 s")
            assert answer.status_code == 200, answer.text
            assert answer.json()["roles"] == []
    finally:
        server.terminate()
        await server.wait()
