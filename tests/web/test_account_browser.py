"""The account page in a real browser (Debian's Chromium, driven by Playwright over real HTTP):
two browser contexts are two browsers signed in as one person, and "Sign out all other
sessions" in one ends the other's session. Without JavaScript, under the page's CSP."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.conftest import Served
from tests.factories import PASSWORD, make_user

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium dials out and the sandboxed network refuses.
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
INSTALL_COMMAND = "apt-get update -qq && apt-get install -y -qq chromium"


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    if not await asyncio.to_thread(CHROMIUM.exists):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        process = await asyncio.create_subprocess_exec("sh", "-c", INSTALL_COMMAND, env=env)
        assert await process.wait() == 0, f"{INSTALL_COMMAND!r} failed"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


async def signed_in(context: BrowserContext, served: Served, console: list[str]) -> Page:
    """A tab of ``context`` that went to /account, was sent to sign in, and came back."""
    page = await context.new_page()
    page.on("console", lambda message: console.append(message.text))
    await page.goto(f"{served.base_url}/account")
    assert urlsplit(page.url).path == "/account/sign-in"
    await page.get_by_label("Email", exact=True).fill("alice@example.com")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{served.base_url}/account")
    await expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    return page


async def test_signing_out_other_sessions_ends_another_browsers_session(
    chromium: Browser, served: Served, pool: asyncpg.Pool
) -> None:
    await make_user(pool, password=PASSWORD)
    console: list[str] = []
    here_context = await chromium.new_context(java_script_enabled=False)
    there_context = await chromium.new_context(java_script_enabled=False)
    try:
        here = await signed_in(here_context, served, console)
        there = await signed_in(there_context, served, console)
        await here.reload()
        await expect(here.get_by_text("This browser")).to_have_count(1)
        await expect(here.get_by_role("button", name="Sign out this session")).to_have_count(1)

        await here.get_by_role("button", name="Sign out all other sessions").click()
        await here.wait_for_url(f"{served.base_url}/account?done=others")
        await expect(here.get_by_role("status")).to_have_text(
            "Your other sessions were signed out."
        )
        await expect(here.get_by_role("button", name="Sign out this session")).to_have_count(0)

        await there.reload()
        assert urlsplit(there.url).path == "/account/sign-in"
        await here.reload()
        assert urlsplit(here.url).path == "/account"
    finally:
        await here_context.close()
        await there_context.close()
    assert [text for text in console if "Content Security Policy" in text] == []
