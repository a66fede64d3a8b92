"""The account page in a real browser (Debian's Chromium, driven by Playwright over real HTTP):
two browser contexts are two browsers signed in as one person, and "Sign out all other
sessions" in one ends the other's session. Without JavaScript, under the page's CSP."""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg
from playwright.async_api import Page, expect

from tests.browser import OpenTab, Tab
from tests.conftest import Served
from tests.factories import PASSWORD, make_user


async def signed_in(tab: Tab, served: Served) -> Page:
    """``tab`` went to /account, was sent to sign in, and came back."""
    page = tab.page
    await page.goto(f"{served.base_url}/account")
    assert urlsplit(page.url).path == "/account/sign-in"
    await page.get_by_label("Email", exact=True).fill("alice@example.com")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{served.base_url}/account")
    await expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    return page


async def test_signing_out_other_sessions_ends_another_browsers_session(
    tabs: OpenTab, served: Served, pool: asyncpg.Pool
) -> None:
    await make_user(pool, password=PASSWORD)
    here_tab = await tabs(java_script_enabled=False)
    there_tab = await tabs(java_script_enabled=False)
    here = await signed_in(here_tab, served)
    there = await signed_in(there_tab, served)
    await here.reload()
    await expect(here.get_by_text("This browser")).to_have_count(1)
    await expect(here.get_by_role("button", name="Sign out this session")).to_have_count(1)

    await here.get_by_role("button", name="Sign out all other sessions").click()
    await here.wait_for_url(f"{served.base_url}/account?done=others")
    await expect(here.get_by_role("status")).to_have_text("Your other sessions were signed out.")
    await expect(here.get_by_role("button", name="Sign out this session")).to_have_count(0)

    await there.reload()
    assert urlsplit(there.url).path == "/account/sign-in"
    await here.reload()
    assert urlsplit(here.url).path == "/account"
    assert here_tab.csp_violations() == there_tab.csp_violations() == []
