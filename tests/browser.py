"""Chromium for the real-browser tests: Debian's ``chromium``, driven by Playwright over real HTTP.

Playwright's own browser download is never used (this machine reaches only package registries):
``install_chromium`` installs Debian's package when it is missing, and a failure fails the test
(never a skip). The fixtures (``browser``, ``tab``, ``tabs``) live in tests/web/conftest.py.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import Served
from tests.factories import make_client, verify
from tests.oauth.flow import Authorization, exchange_code_public
from tests.subprocess_run import run_or_fail

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium dials out and the sandboxed network refuses.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_COMMAND = "apt-get update -qq && apt-get install -y -qq chromium"
INSTALL_TIMEOUT = 900.0
INSTALL_LOCK = Path(tempfile.gettempdir()) / "idp-tests-chromium-install.lock"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # screenshots for a human to look at


async def install_chromium() -> None:
    """apt-get as a subprocess; any failure fails the test with apt's output (never a skip).
    One process at a time (pytest-xdist workers each start a browser): the others wait, then
    find it installed."""
    with INSTALL_LOCK.open("w") as lock:
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)  # released on close
        if not await asyncio.to_thread(CHROMIUM.exists):
            await _apt_get_install()


async def _apt_get_install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    text = await run_or_fail(
        ["sh", "-c", INSTALL_COMMAND], env=env, within=INSTALL_TIMEOUT, shown=INSTALL_COMMAND
    )
    if not await asyncio.to_thread(CHROMIUM.exists):
        pytest.fail(f"{INSTALL_COMMAND!r} succeeded but {CHROMIUM} is missing:\n{text}")


@asynccontextmanager
async def launched_chromium() -> AsyncIterator[Browser]:
    """Chromium (installed first if missing) launched headless by Playwright, closed at the end."""
    if not await asyncio.to_thread(CHROMIUM.exists):
        await install_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Tab:
    """One page in a fresh browser context (a browser of its own: own cookies), with the console
    messages it logged."""

    page: Page
    console: list[str]

    def csp_violations(self) -> list[str]:
        return [text for text in self.console if "Content Security Policy" in text]


class OpenTab(Protocol):
    """``await tabs(**options)``: a tab in a new context; options go to ``Browser.new_context``
    (``java_script_enabled=False`` for a browser without JavaScript)."""

    async def __call__(self, **options: Any) -> Tab: ...


async def screenshot(page: Page, name: str) -> Path:
    """The whole page as ``tests/artifacts/NAME.png``; checked to be a PNG."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    return path


async def relying_app(
    served: Served, pool: asyncpg.Pool, redirect_host: str | None = None
) -> Authorization:
    """A first-party public client (no consent step) of the served app; the authorization
    request it would send. Its redirect URI is on the app's own host and port, or on
    ``redirect_host`` at that port: an app served at ``localhost`` (the only kind of host a
    passkey's RP ID can be) redirects to ``127.0.0.1``, the loopback form RFC 8252 §8.3
    recommends, on another site than idp's."""
    base = urlsplit(served.base_url)
    host = base.netloc if redirect_host is None else f"{redirect_host}:{base.port}"
    redirect_uri = f"{base.scheme}://{host}/cb-test"
    client, _ = await make_client(
        pool,
        served.settings,
        name="Browser Test App",
        grant_types=("authorization_code",),
        redirect_uris=(redirect_uri,),
        scopes=("openid", "profile", "email"),
        public=True,
        first_party=True,
    )
    return Authorization(client.client_id, redirect_uri)


def landed_code(page: Page, auth: Authorization) -> str:
    """The code of the redirect the page landed on (at ``auth``'s redirect URI, with its state)."""
    landed = urlsplit(page.url)
    assert f"{landed.scheme}://{landed.netloc}{landed.path}" == auth.redirect_uri, page.url
    query = {key: values[0] for key, values in parse_qs(landed.query).items()}
    assert query["state"] == auth.state
    return query["code"]


async def id_token_claims(served: Served, auth: Authorization, code: str) -> dict[str, Any]:
    """The relying app's exchange (a public client with PKCE), the ID token verified."""
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        answer = await exchange_code_public(http, code, auth)
        assert answer.status_code == 200, answer.text
        jwks = await http.get("/jwks.json")
    claims = verify(answer.json()["id_token"], jwks.content, ["RS256"])
    assert claims["nonce"] == auth.nonce
    return claims
