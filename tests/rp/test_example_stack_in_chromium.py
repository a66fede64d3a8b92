"""The example stack end to end in Chromium (issue 18's acceptance): idp, the example API
(examples/api) and the example BFF with its page (examples/bff) each served on uvicorn, the page
driven by a real browser.

idp is served as ``localhost`` and the BFF as ``127.0.0.1`` (a loopback redirect URI is an IP
address, RFC 8252 §8.3): two sites, so the return from idp to /auth/callback is the cross-site
top-level GET that SameSite=Lax lets the pending sign-in cookie ride on. idp, the API and the
BFF share one frozen clock: the test expires the access token by moving it.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from examples.api.app import create_app as create_api
from examples.bff.app import create_app as create_bff
from idp.clock import FrozenClock
from idp.settings import Settings
from idp_rp.bff import BffConfig
from tests.browser import launched_chromium, screenshot
from tests.conftest import free_socket, serving, uvicorn_serving
from tests.factories import PASSWORD, make_client, make_user
from tests.rp.bff_stack import refresh_generation

ACCESS_TTL = timedelta(minutes=5)
ADMIN = "grace@example.com"
MEMBER = "ada@example.com"


@dataclass
class Stack:
    bff_url: str
    idp_url: str
    client_id: str
    clock: FrozenClock
    pool: asyncpg.Pool
    browser: Browser
    console: list[str] = field(default_factory=list)

    async def page(self) -> Page:
        """A tab in a browser of its own (own cookies); what it logs goes to ``console``."""
        context: BrowserContext = await self.browser.new_context()
        page = await context.new_page()
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        return page

    def csp_violations(self) -> list[str]:
        return [text for text in self.console if "Content Security Policy" in text]

    async def sign_in(self, page: Page, email: str) -> None:
        """The page's "Sign in" link, idp's hosted login form, and back to the page."""
        await page.goto(self.bff_url + "/")
        await expect(page.locator("body")).to_have_attribute("data-state", "signed-out")
        await page.locator("#sign-in").click()
        await page.get_by_label("Email", exact=True).fill(email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await page.wait_for_url(self.bff_url + "/")
        await expect(page.locator("body")).to_have_attribute("data-state", "signed-in")

    async def click(self, page: Page, button: str) -> str:
        """Clicks ``button`` and waits for its call's answer: the status the page shows."""
        result = page.locator("#result")
        await page.evaluate("document.getElementById('result').dataset.status = ''")
        await page.locator(button).click()
        await expect(result).not_to_have_attribute("data-status", "")
        return str(await result.get_attribute("data-status"))


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with launched_chromium() as launched:
        yield launched


@pytest.fixture
async def stack(
    settings: Settings, clock: FrozenClock, pool: asyncpg.Pool, chromium: Browser
) -> AsyncIterator[Stack]:
    clock.set(datetime.now(UTC).replace(microsecond=0))
    bff_socket, api_socket = free_socket(), free_socket()
    bff_url = f"http://127.0.0.1:{bff_socket.getsockname()[1]}"
    api_url = f"http://127.0.0.1:{api_socket.getsockname()[1]}"
    client, secret = await make_client(
        pool,
        settings,
        name="Example app",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(f"{bff_url}/auth/callback",),
        scopes=("openid", "profile", "email", "roles"),
        audiences=(api_url,),
        first_party=True,
        access_token_ttl=ACCESS_TTL,
        post_logout_redirect_uris=(f"{bff_url}/",),
    )
    await make_user(pool, ADMIN, name="Grace", roles=("admin",))
    await make_user(pool, MEMBER, name="Ada")
    async with (
        serving(settings, clock=clock, hostname="localhost") as idp,
        httpx.AsyncClient(timeout=10) as http,
    ):
        api = create_api(idp.base_url, api_url, clock=clock, http=http)
        config = BffConfig(
            issuer=idp.base_url,
            client_id=client.client_id,
            client_secret=secret,
            base_url=bff_url,
            cookie_key=secrets.token_bytes(32),
            api_upstream=api_url,
        )
        async with (
            uvicorn_serving(api, api_socket),
            uvicorn_serving(create_bff(config, clock=clock), bff_socket),
        ):
            yield Stack(bff_url, idp.base_url, client.client_id, clock, pool, chromium)


async def test_sign_in_shows_the_user_and_the_admin_route_answers_by_role(stack: Stack) -> None:
    admin = await stack.page()
    await stack.sign_in(admin, ADMIN)
    await expect(admin.locator("#user-email")).to_have_text(ADMIN)
    await expect(admin.locator("#user-roles")).to_have_text("admin")
    assert await stack.click(admin, "#report") == "200"
    await screenshot(admin, "bff-example-admin-report")

    member = await stack.page()
    await stack.sign_in(member, MEMBER)
    await expect(member.locator("#user-name")).to_have_text("Ada")
    assert await stack.click(member, "#greeting") == "200"
    await expect(member.locator("#result-body")).to_contain_text("Hello, ")
    assert await stack.click(member, "#report") == "403"
    await screenshot(member, "bff-example-member-report-forbidden")
    assert stack.csp_violations() == []


async def test_the_page_reads_only_the_xsrf_cookie_and_a_post_without_the_header_is_403(
    stack: Stack,
) -> None:
    page = await stack.page()
    await stack.sign_in(page, MEMBER)
    readable = str(await page.evaluate("document.cookie"))
    assert "XSRF-TOKEN=" in readable
    assert "bff_" not in readable  # the token cookies are HttpOnly
    kept = {cookie["name"]: cookie for cookie in await page.context.cookies(stack.bff_url)}
    assert set(kept) == {"bff_session", "bff_refresh", "bff_id", "XSRF-TOKEN"}
    for name in ("bff_session", "bff_refresh", "bff_id"):
        assert kept[name]["httpOnly"], name
        assert kept[name]["secure"], name  # Chromium keeps Secure cookies on http://127.0.0.1
        assert kept[name]["sameSite"] == "Lax", name
    assert await stack.click(page, "#forged-post") == "403"
    await expect(page.locator("#result-body")).to_contain_text("xsrf_failed")
    await screenshot(page, "bff-example-post-without-xsrf")


async def test_an_expired_token_is_refreshed_unseen_and_twenty_calls_make_one_refresh(
    stack: Stack,
) -> None:
    page = await stack.page()
    await stack.sign_in(page, MEMBER)
    visited: list[str] = []
    page.on("framenavigated", lambda frame: visited.append(frame.url))

    stack.clock.advance(ACCESS_TTL + timedelta(seconds=1))
    assert await stack.click(page, "#greeting") == "200"
    assert await refresh_generation(stack.pool, stack.client_id) == 1

    stack.clock.advance(ACCESS_TTL + timedelta(seconds=1))
    assert await stack.click(page, "#burst") == "200"
    await expect(page.locator("#result-body")).to_contain_text('"200": 20')
    assert await refresh_generation(stack.pool, stack.client_id) == 2  # one for the twenty
    assert visited == []  # never back to a sign-in page
    await expect(page.locator("body")).to_have_attribute("data-state", "signed-in")
    await screenshot(page, "bff-example-after-refresh")


async def test_sign_out_ends_the_idp_session_too(stack: Stack) -> None:
    page = await stack.page()
    await stack.sign_in(page, MEMBER)
    await page.locator("#sign-out").click()
    await page.wait_for_url(stack.bff_url + "/")
    await expect(page.locator("body")).to_have_attribute("data-state", "signed-out")
    await page.locator("#sign-in").click()
    await page.wait_for_url(f"{stack.idp_url}/login**")  # idp asks for the password again
    await expect(page.get_by_label("Password")).to_be_visible()
    assert urlsplit(page.url).path == "/login"
