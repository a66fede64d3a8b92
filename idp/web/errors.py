"""Every error leaves as JSON shaped like RFC 6749 §5.2 (``error``, ``error_description``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp.web.templates import error_page

log = logging.getLogger(__name__)

_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 503: "temporarily_unavailable"}


def json_error(
    status_code: int,
    error: str,
    description: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = (
        {"error": error}
        if description is None
        else {"error": error, "error_description": description}
    )
    return JSONResponse(
        body, status_code=status_code, headers={"Cache-Control": "no-store", **(headers or {})}
    )


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = _ERROR_CODES.get(exc.status_code, "invalid_request")
    return json_error(exc.status_code, error, exc.detail, exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return json_error(500, "server_error", "The server could not handle the request.")


# Pages a browser shows; everything else is an API answering JSON.
BROWSER_PATHS = frozenset({"/authorize", "/login", "/consent", "/logout", "/demo/callback"})
RETRY_AFTER_SECONDS = "5"


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """PostgreSQL is unreachable: 503 with Retry-After, never a 500. The JWKS, discovery and
    token verification do not get here: they answer from memory."""
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    headers = {"Retry-After": RETRY_AFTER_SECONDS}
    if request.url.path in BROWSER_PATHS:
        page = error_page(
            503, "Temporarily unavailable", "idp cannot reach its database. Try again shortly."
        )
        page.headers.update(headers)
        return page
    return json_error(503, "temporarily_unavailable", "the database is unreachable", headers)
