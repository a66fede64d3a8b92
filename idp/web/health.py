"""``/healthz`` (the process answers) and ``/readyz`` (it can serve: database and keys)."""

from __future__ import annotations

import asyncio

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp.web.state import AppState

_NO_STORE = {"Cache-Control": "no-store"}
DATABASE_CHECK_TIMEOUT = 2.0


async def healthz(request: Request[AppState]) -> Response:
    return JSONResponse({"status": "ok"}, headers=_NO_STORE)


async def readyz(request: Request[AppState]) -> Response:
    checks = {
        "database": "ok",
        "keyring": "ok" if request.state["keyring"].fresh else "stale",
    }
    try:
        async with asyncio.timeout(DATABASE_CHECK_TIMEOUT):
            await request.state["pool"].fetchval("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        checks["database"] = "unreachable"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
        headers=_NO_STORE,
    )
