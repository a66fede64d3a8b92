"""The hosted login in a real browser: Debian's Chromium, driven by Playwright over real HTTP.

Playwright's own browser download is never used (this machine reaches only package
registries); the fixture installs Debian's ``chromium`` when it is missing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from tests.conftest import Served
from tests.factories import make_client, make_user
from tests.oauth.flow import Authorization

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
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PASSWORD = "correct horse battery"
GENERIC_ERROR = "Incorrect email or password."


async def install_chromium() -> None:
    """apt-get as a subprocess; any failure fails the test with apt's output (never a skip)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    process = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        INSTALL_COMMAND,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    try:
        async with asyncio.timeout(INSTALL_TIMEOUT):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{INSTALL_COMMAND!r} did not finish within {INSTALL_TIMEOUT:.0f} s")
    text = output.decode(errors="replace")
    if process.returncode != 0:
        pytest.fail(f"{INSTALL_COMMAND!r} exited with {process.returncode}:\n{text}")
    if not await asyncio.to_thread(CHROMIUM.exists):
        pytest.fail(f"{INSTALL_COMMAND!r} succeeded but {CHROMIUM} is missing:\n{text}")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
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
    """One page in a fresh browser context, with the console messages it logged."""

    page: Page
    console: list[str]

    def csp_violations(self) -> list[str]:
        return [text for text in self.console if "Content Security Policy" in text]


@pytest.fixture
async def tab(browser: Browser) -> AsyncIterator[Tab]:
    context = await browser.new_context()
    page = await context.new_page()
    console: list[str] = []

    def record(message: ConsoleMessage) -> None:
        console.append(f"{message.type}: {message.text}")

    page.on("console", record)
    try:
        yield Tab(page, console)
    finally:
        await context.close()


async def start_sign_in(served: Served, pool: asyncpg.Pool) -> Authorization:
    """A first-party client and a user; the authorization request a relying app would send."""
    redirect_uri = f"{served.base_url}/cb-test"
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
    await make_user(pool, password=PASSWORD)
    return Authorization(client.client_id, redirect_uri)


async def open_login_page(tab: Tab, served: Served, auth: Authorization) -> None:
    response = await tab.page.goto(served.base_url + auth.url())
    assert response is not None
    assert response.status == 200
    assert urlsplit(tab.page.url).path == "/login"
    await expect(tab.page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(tab.page.get_by_text("Browser Test App")).to_be_visible()


async def test_signing_in_in_a_browser_lands_on_the_redirect_uri_with_code_state_and_iss(
    tab: Tab, served: Served, pool: asyncpg.Pool
) -> None:
    auth = await start_sign_in(served, pool)
    page = tab.page
    await open_login_page(tab, served, auth)
    email, password = page.get_by_label("Email", exact=True), page.get_by_label("Password")
    await expect(email).to_be_focused()  # autofocus
    # The stylesheet arrived and applied (a CSP that blocked it would leave zero rules).
    assert await page.evaluate("document.styleSheets[0].cssRules.length") > 0
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "login-page.png"
    await page.screenshot(path=screenshot, full_page=True)
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert tab.csp_violations() == []

    await email.fill("alice@example.com")
    await password.fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{auth.redirect_uri}?**")

    landed = urlsplit(page.url)
    assert f"{landed.scheme}://{landed.netloc}{landed.path}" == auth.redirect_uri
    query = {key: values[0] for key, values in parse_qs(landed.query).items()}
    assert query.keys() == {"code", "state", "iss"}
    assert query["state"] == auth.state
    assert query["iss"] == served.base_url  # RFC 9207
    assert len(query["code"]) >= 43  # ≥ 256 bits, base64url
    assert tab.csp_violations() == []


async def test_a_wrong_password_shows_the_generic_error_and_stays_on_login(
    tab: Tab, served: Served, pool: asyncpg.Pool
) -> None:
    auth = await start_sign_in(served, pool)
    page = tab.page
    await open_login_page(tab, served, auth)
    await page.get_by_label("Email", exact=True).fill("alice@example.com")
    await page.get_by_label("Password").fill("wrong horse battery")
    async with page.expect_navigation() as navigation:
        await page.get_by_role("button", name="Sign in").click()
    response = await navigation.value
    assert response is not None
    assert response.status == 401

    await expect(page.get_by_role("alert")).to_have_text(GENERIC_ERROR)
    assert urlsplit(page.url).path == "/login"
    await expect(page.get_by_label("Email", exact=True)).to_have_value("alice@example.com")
    await expect(page.get_by_label("Password")).to_have_value("")
    assert tab.csp_violations() == []
