"""The hot API endpoints that ``Front`` calls past Starlette's middleware and router
(idp.web.direct) answer exactly as they would through Starlette, errors included."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.app import DIRECT, create_app
from idp.db.pool import DatabaseUnavailableError
from idp.runtime import resolve
from idp.settings import Settings
from idp.web.direct import direct_app
from idp.web.errors import EXCEPTION_HANDLERS
from idp.web.observe import Front

FAILURES = [
    (DatabaseUnavailableError("connection refused"), 503),
    (OSError("no space left on device"), 500),
    (asyncpg.PostgresConnectionError("the server went away"), 503),
    (asyncpg.InterfaceError("the pool is closed"), 503),
    (HTTPException(404, "no such thing"), 404),
    (RuntimeError("a bug"), 500),
]


async def answer(app: Any, *, raise_app_exceptions: bool = False) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://idp.test") as http:
        return await http.post("/token", data={"grant_type": "refresh_token"})


def failing(exc: Exception) -> Any:
    async def endpoint(request: Request[Any]) -> Response:
        await request.body()
        raise exc

    return endpoint


@pytest.mark.parametrize(("exc", "status"), FAILURES, ids=[type(e).__name__ for e, _ in FAILURES])
async def test_an_exception_in_a_direct_endpoint_is_answered_as_starlette_answers_it(
    exc: Exception, status: int
) -> None:
    endpoint = failing(exc)
    through_starlette = Starlette(
        routes=[Route("/token", endpoint, methods=["POST"])],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    starlette_answer = await answer(through_starlette)
    direct_answer = await answer(direct_app(endpoint, EXCEPTION_HANDLERS))

    assert direct_answer.status_code == starlette_answer.status_code == status
    assert direct_answer.json() == starlette_answer.json()
    assert direct_answer.json()["error"] in {
        "temporarily_unavailable",
        "not_found",
        "server_error",
    }
    for header in ("content-type", "cache-control", "retry-after"):
        assert direct_answer.headers.get(header) == starlette_answer.headers.get(header)


async def test_an_unhandled_exception_is_answered_with_a_500_then_raised_for_the_server_to_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As ServerErrorMiddleware does: the 500 answer goes out, and the exception goes on up."""
    with pytest.raises(RuntimeError, match="a bug"):
        await answer(
            direct_app(failing(RuntimeError("a bug")), EXCEPTION_HANDLERS),
            raise_app_exceptions=True,
        )
    assert "unhandled error on POST /token" in caplog.text


async def test_every_direct_endpoint_is_wired_to_its_route(settings: Settings) -> None:
    """A route renamed or dropped from the URL map must not leave a pair of DIRECT unserved."""
    app = create_app(resolve(settings), run_scheduler=False)
    front = app.build_middleware_stack()
    assert isinstance(front, Front)
    assert set(front.direct) == DIRECT
