"""The real-browser fixtures (tests/browser.py): one Chromium for the session, and tabs, each in
a fresh browser context that is closed at the end of the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage

from tests.browser import OpenTab, Tab, launched_chromium


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium() as launched:
        yield launched


@pytest.fixture
async def tabs(browser: Browser) -> AsyncIterator[OpenTab]:
    contexts: list[BrowserContext] = []

    async def open_tab(**options: Any) -> Tab:
        context = await browser.new_context(**options)
        contexts.append(context)
        page = await context.new_page()
        console: list[str] = []

        def record(message: ConsoleMessage) -> None:
            console.append(f"{message.type}: {message.text}")

        page.on("console", record)
        return Tab(page, console)

    try:
        yield open_tab
    finally:
        for context in contexts:
            await context.close()


@pytest.fixture
async def tab(tabs: OpenTab) -> Tab:
    return await tabs()
