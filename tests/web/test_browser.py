"""The hosted login in a real browser: Debian's Chromium, driven by Playwright over real HTTP
(the fixtures: tests/web/conftest.py, tests/browser.py)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import asyncpg
from playwright.async_api import expect

from tests.browser import Tab, relying_app, screenshot
from tests.conftest import Served
from tests.factories import make_user
from tests.oauth.flow import Authorization

PASSWORD = "correct horse battery"
GENERIC_ERROR = "Incorrect email or password."


async def start_sign_in(served: Served, pool: asyncpg.Pool) -> Authorization:
    """A first-party client and a user; the authorization request a relying app would send."""
    await make_user(pool, password=PASSWORD)
    return await relying_app(served, pool)


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
    await screenshot(page, "login-page")
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
