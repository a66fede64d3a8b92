"""How every error is answered over HTTP: the one place that turns an exception into a response.

::

    exception                          answer
    AuthorizePageError                 400 page (the redirect URI is not trusted), or its status
    AuthorizeRedirectError             303 to the client: error, state, iss
    DatabaseUnavailableError           503 temporarily_unavailable, Retry-After: no database
    asyncpg.PostgresConnectionError      connection in time (idp.db.pool), or it broke, or
    asyncpg.InterfaceError               the pool is closed;
    KeyringStaleError                    signing keys not reloaded for too long;
    TemporarilyUnavailableError          raised as such
    OAuthError                         its status, RFC 6749 §5.2 JSON
    HTTPException                      404 not_found, 405 method_not_allowed (+ Allow)
    anything else, OSError included    500 server_error, logged

A browser (its ``Accept`` prefers ``text/html``) gets a readable page with the security headers;
any other client gets JSON shaped like RFC 6749 §5.2 (``error``, ``error_description``).
Endpoints that answer an error themselves, because CORS needs the client they authenticated,
shape it with ``oauth_error`` (RFC 6749 §5.2) or ``bearer_error`` (RFC 6750 §3).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp.db.pool import DatabaseUnavailableError
from idp.keys.keyring import KeyringStaleError
from idp.logs import REQUEST_ID
from idp.oauth.authorize import AuthorizePageError, AuthorizeRedirectError
from idp.oauth.code_flow import redirect_to_client
from idp.oauth.errors import (
    InvalidClientError,
    OAuthError,
    ServerError,
    TemporarilyUnavailableError,
)
from idp.web.authorize import redirect
from idp.web.templates import error_page

log = logging.getLogger(__name__)

ExceptionHandler = Callable[[Request[Any], Exception], Awaitable[Response]]

RETRY_AFTER_SECONDS = "5"
NO_STORE = {"Cache-Control": "no-store"}
# RFC 6749 §5.1 and §5.2: token endpoint answers, errors included, must not be cached.
TOKEN_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# RFC 6749 §5.2: the scheme a client that failed to authenticate may use.
BASIC_CHALLENGE = 'Basic realm="idp", charset="UTF-8"'
# RFC 6750 §3: error_description is a quoted-string of these characters only.
_NOT_CHALLENGE_TEXT = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
# RFC 9110 §12.4.2: a qvalue.
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")

_HTTP_ERRORS = {
    404: ("not_found", "Page not found", "There is no page at this address: check it for a typo."),
    405: ("method_not_allowed", "Method not allowed", "This page cannot be used that way."),
}
_UNAVAILABLE = (
    "Temporarily unavailable",
    "idp cannot reach its database. Try again shortly.",
    "the database is unreachable",
)
_KEYS_UNAVAILABLE = (
    "Temporarily unavailable",
    "idp cannot sign right now. Try again shortly.",
    "signing keys could not be refreshed; try again shortly",
)


def prefers_html(request: Request[Any]) -> bool:
    """A browser: ``Accept`` weighs ``text/html`` above JSON, each weighed by the most specific
    range that matches it (RFC 9110 §12.5.1). API clients send ``*/*``, ``application/json`` or
    nothing: a tie or less is JSON."""
    accept = request.headers.get("accept", "").lower()
    if "text/html" not in accept:
        return False
    ranges = [_media_range(item) for item in accept.split(",")]
    return _weight(ranges, "text", "html") > _weight(ranges, "application", "json")


def _media_range(item: str) -> tuple[str, float]:
    media, *parameters = item.split(";")
    weight = 1.0
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "q":
            value = value.strip()
            weight = float(value) if _QVALUE.fullmatch(value) else 0.0
    return media.strip(), weight


def _weight(ranges: list[tuple[str, float]], kind: str, subtype: str) -> float:
    specificity, weight = -1, 0.0
    for media, q in ranges:
        rank = {f"{kind}/{subtype}": 2, f"{kind}/*": 1, "*/*": 0}.get(media, -1)
        if rank > specificity:
            specificity, weight = rank, q
    return weight


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
    return JSONResponse(body, status_code=status_code, headers={**NO_STORE, **(headers or {})})


def oauth_error(error: OAuthError) -> JSONResponse:
    """RFC 6749 §5.2: the error as JSON, never cached; ``invalid_client`` with a challenge."""
    headers = dict(TOKEN_NO_STORE)
    if isinstance(error, InvalidClientError):
        headers["WWW-Authenticate"] = BASIC_CHALLENGE
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(error.body(), status_code=error.status_code, headers=headers)


def bearer_error(error: OAuthError | None) -> JSONResponse:
    """RFC 6750 §3: a Bearer challenge saying what went wrong (``invalid_token``,
    ``insufficient_scope``, ``invalid_request``); None: no token was sent, and the challenge
    carries no error code (§3.1), with a 401."""
    challenge = 'Bearer realm="idp"'
    body = {"error": "invalid_request"}
    if error is not None:
        body = error.body()
        challenge += f', error="{error.error}"'
        if error.description:
            text = _NOT_CHALLENGE_TEXT.sub("?", error.description)
            challenge += f', error_description="{text}"'
    status = 401 if error is None else error.status_code
    headers = {"WWW-Authenticate": challenge, **NO_STORE}
    return JSONResponse(body, status_code=status, headers=headers)


def _page_or_json(
    request: Request[Any],
    status_code: int,
    error: str,
    page: tuple[str, str],
    description: str | None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The one rule: a readable page for a browser, JSON for anything else."""
    if prefers_html(request):
        response = error_page(request, status_code, *page)
        response.headers.update(headers or {})
        return response
    return json_error(status_code, error, description, headers)


async def authorize_page(request: Request[Any], exc: Exception) -> Response:
    """RFC 6749 §4.1.2.1: the client or its redirect URI is in doubt: tell the user, never the
    redirect URI."""
    assert isinstance(exc, AuthorizePageError)
    response = error_page(request, exc.status_code, exc.title, exc.detail)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def authorize_redirect(request: Request[Any], exc: Exception) -> Response:
    """RFC 6749 §4.1.2.1, RFC 9207 §2: back to the client with ``error``, ``state``, ``iss``."""
    assert isinstance(exc, AuthorizeRedirectError)
    error = exc.oauth_error
    text = error.description or error.error
    issuer = request.state["settings"].issuer
    url = redirect_to_client(exc.request, issuer, error=error.error, error_description=text)
    return redirect(url)


async def unavailable(request: Request[Any], exc: Exception) -> Response:
    """What idp needs is away for a moment: 503 with Retry-After, never a 500 or a hang. The JWKS,
    discovery and token verification do not get here: they answer from memory."""
    log.warning("unavailable on %s %s: %s", request.method, request.url.path, exc)
    keys = isinstance(exc, KeyringStaleError)
    title, detail, description = _KEYS_UNAVAILABLE if keys else _UNAVAILABLE
    if isinstance(exc, TemporarilyUnavailableError) and exc.description:
        description = exc.description
    headers = {"Retry-After": RETRY_AFTER_SECONDS}
    return _page_or_json(
        request, 503, TemporarilyUnavailableError.error, (title, detail), description, headers
    )


async def oauth_exception(request: Request[Any], exc: Exception) -> Response:
    """An OAuth error no endpoint answered itself: RFC 6749 §5.2 JSON, or a page."""
    assert isinstance(exc, OAuthError)
    if prefers_html(request):
        return error_page(request, exc.status_code, "Invalid request", exc.description or exc.error)
    return oauth_error(exc)


async def http_exception(request: Request[Any], exc: Exception) -> Response:
    """Starlette's own: an unknown path (404) or a method the route does not take (405)."""
    assert isinstance(exc, HTTPException)
    error, title, detail = _HTTP_ERRORS.get(
        exc.status_code, ("invalid_request", "Invalid request", exc.detail)
    )
    return _page_or_json(request, exc.status_code, error, (title, detail), exc.detail, exc.headers)


async def server_error(request: Request[Any], exc: Exception) -> Response:
    """Starlette's ServerErrorMiddleware answers this outside every declared middleware, so the
    request observer cannot add the request id: it is added here (the id is still set)."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    page = ("Something went wrong", "idp could not handle the request. Try again later.")
    description = "The server could not handle the request."
    request_id = REQUEST_ID.get()
    headers = {} if request_id is None else {"X-Request-Id": request_id}
    return _page_or_json(request, 500, ServerError.error, page, description, headers)


# Looked up by the exception's class, nearest first (Starlette); Exception answers the rest.
EXCEPTION_HANDLERS: dict[Any, ExceptionHandler] = {
    HTTPException: http_exception,
    AuthorizePageError: authorize_page,
    AuthorizeRedirectError: authorize_redirect,
    TemporarilyUnavailableError: unavailable,
    # The database cannot be reached (connection refused or broken, pool exhausted or closed):
    # 503, not 500. Any other OSError is a bug or a local failure: a 500.
    DatabaseUnavailableError: unavailable,
    asyncpg.PostgresConnectionError: unavailable,
    asyncpg.InterfaceError: unavailable,
    KeyringStaleError: unavailable,
    OAuthError: oauth_exception,
    Exception: server_error,
}
