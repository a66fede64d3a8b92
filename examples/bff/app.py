"""The example backend-for-frontend of the seed stack: idp_rp's BFF kit and one static page.

    GET  /                  the page (static/index.html, static/app.js)
    GET  /auth/login        sign in at idp (the authorization code flow, PKCE, a client secret)
    GET  /auth/callback     back from idp
    POST /auth/logout       sign out here and at idp (X-XSRF-TOKEN required)
    GET  /me                the signed-in user, or 401
    *    /api/...           the example API (examples/api), with the session's access token

Run it next to idp and the API with ``examples/serve``, or by hand from the repository root::

    PYTHONPATH=rp BFF_CLIENT_ID=... BFF_CLIENT_SECRET=... BFF_COOKIE_KEY=... \\
        .venv/bin/uvicorn --factory examples.bff.app:app_from_env --host 127.0.0.1 --port 8001

The environment: IDP_ISSUER (default http://localhost:8000), BFF_BASE_URL (this app's public
origin, default http://127.0.0.1:8001: a loopback redirect URI is an IP address, RFC 8252 §8.3),
API_URL (default http://localhost:8002), BFF_CLIENT_ID and BFF_CLIENT_SECRET (from
``idp clients add``), BFF_COOKIE_KEY (32 random bytes, base64url: the AES-GCM key that seals the
cookies; ``python -c "import secrets; print(secrets.token_urlsafe(32))"``).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idp_rp.bff import BackendForFrontend, BffConfig, SessionStore
from idp_rp.clock import Clock

STATIC = Path(__file__).resolve().parent / "static"
# Every answer (JSON, the page's script and style, the proxied API's): never sniffed into
# something else, never framed (CSP frame-ancestors; X-Frame-Options for older browsers), no
# Referer to other sites. The page's own policy below replaces this CSP.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
# RFC 6797: on https, the browser never again tries this origin over http.
HSTS = "max-age=31536000"
# The page loads only its own script and talks only to this origin; it frames nothing and may
# be framed by nothing.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """ASGI middleware: SECURITY_HEADERS (and HSTS on https) on every response that does not
    set its own."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.headers = {
            **SECURITY_HEADERS,
            **({"strict-transport-security": HSTS} if https else {}),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ExampleConfigError(ValueError):
    """An environment variable the example cannot start without, or cannot read."""


def create_app(
    config: BffConfig,
    *,
    clock: Clock | None = None,
    http: httpx.AsyncClient | None = None,
    store: SessionStore | None = None,
) -> Starlette:
    """The BFF for ``config``; ``clock`` and ``http`` are for tests, ``store`` keeps the tokens
    server-side instead of in sealed cookies."""
    bff = BackendForFrontend(config, clock=clock, http=http, store=store)

    async def page(_: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await bff.aclose()

    return Starlette(
        routes=[
            Route("/", page),
            *bff.routes,
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(SecurityHeaders, https=config.https)],
        lifespan=lifespan,
    )


def config_from_env(environ: Mapping[str, str]) -> BffConfig:
    def required(name: str) -> str:
        value = environ.get(name, "").strip()
        if not value:
            raise ExampleConfigError(f"{name} is required (examples/serve sets it)")
        return value

    key_text = required("BFF_COOKIE_KEY")
    try:
        cookie_key = base64.urlsafe_b64decode(key_text + "=" * (-len(key_text) % 4))
    except (ValueError, binascii.Error) as error:
        raise ExampleConfigError("BFF_COOKIE_KEY is not base64url") from error
    return BffConfig(
        issuer=environ.get("IDP_ISSUER", "http://localhost:8000"),
        client_id=required("BFF_CLIENT_ID"),
        client_secret=required("BFF_CLIENT_SECRET"),
        base_url=environ.get("BFF_BASE_URL", "http://127.0.0.1:8001"),
        cookie_key=cookie_key,
        api_upstream=environ.get("API_URL", "http://localhost:8002"),
    )


def app_from_env() -> Starlette:
    """For ``uvicorn --factory examples.bff.app:app_from_env``."""
    return create_app(config_from_env(os.environ))
