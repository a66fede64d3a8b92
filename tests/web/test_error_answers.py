"""How errors are answered (``idp.web.errors``): a browser gets a readable page, an API client
JSON; only the database being unreachable (or the keyring stale) is a 503, any other failure,
``OSError`` included, a 500."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.db.pool import DatabaseUnavailableError
from idp.keys.keyring import KeyringStaleError
from idp.oauth.errors import InvalidRequestError, TemporarilyUnavailableError
from idp.web.errors import EXCEPTION_HANDLERS
from idp.web.observe import RequestObserver
from tests.conftest import InstanceFactory
from tests.factories import assert_oauth_error, assert_security_headers

# What browsers send when they navigate (Chromium, Firefox).
CHROMIUM = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
API_CLIENTS = [None, "*/*", "application/json", "application/json, text/html", "text/*, */*"]


def accept(value: str | None) -> dict[str, str]:
    return {} if value is None else {"Accept": value}


@pytest.mark.parametrize("browser", [CHROMIUM, FIREFOX, "text/html"])
async def test_a_mistyped_url_shows_a_browser_the_readable_page(
    app_instance: InstanceFactory, browser: str
) -> None:
    async with app_instance() as instance:
        response = await instance.client.get("/no-such-page", headers={"Accept": browser})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>Page not found" in response.text
    assert_security_headers(response)


@pytest.mark.parametrize("value", API_CLIENTS)
async def test_a_mistyped_url_gives_an_api_client_json(
    app_instance: InstanceFactory, value: str | None
) -> None:
    async with app_instance() as instance:
        response = await instance.client.get("/no-such-page", headers=accept(value))
    assert_oauth_error(response, 404, "not_found")
    assert response.headers["cache-control"] == "no-store"


async def test_a_wrong_method_shows_a_browser_a_page_and_still_says_what_is_allowed(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance() as instance:
        # A form posted to /authorize (OIDC allows POST; idp takes GET only).
        page = await instance.client.post("/authorize", headers={"Accept": FIREFOX})
        api = await instance.client.post("/authorize")
    assert page.status_code == 405
    assert page.headers["content-type"].startswith("text/html")
    assert "GET" in page.headers["allow"]
    assert_security_headers(page)
    assert_oauth_error(api, 405, "method_not_allowed")
    assert "GET" in api.headers["allow"]


def raising(exc: Exception) -> Any:
    async def endpoint(request: Request[Any]) -> Response:
        raise exc

    return endpoint


async def answer(exc: Exception, accept_value: str | None = None) -> httpx.Response:
    """``exc`` raised by an endpoint of an app answering with idp's handlers."""
    app = Starlette(
        routes=[Route("/token", raising(exc), methods=["POST"])],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://idp.test") as http:
        return await http.post("/token", headers=accept(accept_value))


UNAVAILABLE = [
    DatabaseUnavailableError("no database connection was free within 5s"),
    asyncpg.PostgresConnectionError("the server went away"),
    asyncpg.InterfaceError("the pool is closed"),
    KeyringStaleError("signing keys not reloaded for too long"),
    TemporarilyUnavailableError("try again shortly"),
]
NOT_UNAVAILABLE = [
    OSError("no space left on device"),
    FileNotFoundError("/etc/idp/missing"),
    PermissionError("denied"),
    RuntimeError("a bug"),
]


@pytest.mark.parametrize("exc", UNAVAILABLE, ids=lambda exc: type(exc).__name__)
async def test_an_unreachable_database_or_a_stale_keyring_is_503_with_retry_after(
    exc: Exception,
) -> None:
    response = await answer(exc)
    assert_oauth_error(response, 503, "temporarily_unavailable")
    assert response.headers["retry-after"] == "5"
    assert response.headers["cache-control"] == "no-store"
    page = await answer(exc, FIREFOX)
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["retry-after"] == "5"
    assert_security_headers(page)


async def test_a_stale_keyring_says_so() -> None:
    response = await answer(KeyringStaleError("signing keys not reloaded for too long"))
    assert response.json()["error_description"] == (
        "signing keys could not be refreshed; try again shortly"
    )


@pytest.mark.parametrize("exc", NOT_UNAVAILABLE, ids=lambda exc: type(exc).__name__)
async def test_any_other_failure_is_a_500_even_an_oserror(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    response = await answer(exc)
    assert_oauth_error(response, 500, "server_error")
    assert "retry-after" not in response.headers
    assert "unhandled error on POST /token" in caplog.text
    page = await answer(exc, CHROMIUM)
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert_security_headers(page)


async def test_an_oauth_error_no_endpoint_answered_is_spec_json_not_a_500() -> None:
    response = await answer(InvalidRequestError("the request body is too large"))
    assert_oauth_error(response, 400, "invalid_request")
    assert response.json()["error_description"] == "the request body is too large"
    assert response.headers["cache-control"] == "no-store"


async def test_a_500_carries_the_request_id_the_observer_gave_the_request() -> None:
    """ServerErrorMiddleware answers outside the request observer; the id must still be there,
    the same one the request's log lines carry."""
    routes = [Route("/token", raising(RuntimeError("a bug")), methods=["POST"])]
    app = Starlette(
        routes=routes,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(RequestObserver, routes=routes)],
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://idp.test") as http:
        response = await http.post("/token", headers={"X-Request-Id": "proxy-id-123"})
    assert_oauth_error(response, 500, "server_error")
    assert response.headers["x-request-id"] == "proxy-id-123"
