"""A client that registered itself (RFC 7591, IDP_DCR=open), in a real browser: the consent
page marks it unverified and names the host the browser will return to, under the CSP."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
from playwright.async_api import expect

from idp.settings import Settings
from tests.browser import Tab, screenshot
from tests.conftest import serving
from tests.factories import make_user
from tests.oauth.flow import Authorization

PASSWORD = "correct horse battery"


async def test_a_registered_clients_consent_page_is_marked_unverified_in_a_browser(
    tab: Tab, settings: Settings, pool: asyncpg.Pool
) -> None:
    await make_user(pool, password=PASSWORD)
    async with serving(replace(settings, dcr="open")) as served:
        port = urlsplit(served.base_url).port
        redirect_uri = f"http://127.0.0.1:{port}/cb-registered"
        async with httpx.AsyncClient(base_url=served.base_url) as http:
            registered = await http.post(
                "/oauth2/register",
                json={"client_name": "Some CLI", "redirect_uris": [redirect_uri]},
            )
        assert registered.status_code == 201, registered.text
        auth = Authorization(registered.json()["client_id"], redirect_uri)
        page = tab.page
        await page.goto(served.base_url + auth.url())
        await page.get_by_label("Email", exact=True).fill("alice@example.com")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()

        await expect(page.get_by_role("heading", name="Allow Some CLI?")).to_be_visible()
        await expect(page.locator("#unverified")).to_contain_text("Unverified application")
        await expect(page.locator("#redirect-host")).to_have_text(f"127.0.0.1:{port}")
        await screenshot(page, "consent-unverified")
        await page.get_by_role("button", name="Allow").click()
        await page.wait_for_url(f"{redirect_uri}?**")

    query = parse_qs(urlsplit(page.url).query)
    assert query["state"] == [auth.state]
    assert "code" in query
    assert tab.csp_violations() == []
