"""Sign-up in a real browser (Debian's Chromium over real HTTP, JavaScript off, under the pages'
CSP): from a relying app's sign-in page to an account, through the demo mailbox (demo mode, no
SMTP: every mail idp sends is shown on /demo/mailbox), and back to the app with a code."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from playwright.async_api import Locator, Page, expect

from idp.settings import Settings
from tests.browser import OpenTab, Tab, relying_app, screenshot
from tests.conftest import Served

EMAIL = "carol@example.com"
PASSWORD = "violet staple orbit lantern"  # long enough, not common, not the address
SUBJECT = "Verify your email address"
VERIFIED = "Your address is verified. Sign in to continue."


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Demo mode without SMTP (mail lands on /demo/mailbox), registration open."""
    return replace(settings, demo=True, registration="open", smtp_url=None)


@pytest.fixture
async def tab(tabs: OpenTab) -> Tab:
    """A browser without JavaScript: every page of the flow must work with plain forms."""
    return await tabs(java_script_enabled=False)


async def verified_state(pool: asyncpg.Pool) -> tuple[bool, bool] | None:
    row = await pool.fetchrow(
        "SELECT email_verified, must_verify_email FROM users WHERE email = $1", EMAIL
    )
    return None if row is None else (row["email_verified"], row["must_verify_email"])


async def sign_up(page: Page) -> None:
    """Fill and send the sign-up form the page shows; the "check your mail" page follows."""
    await expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    await page.get_by_label("Email", exact=True).fill(EMAIL)
    await page.get_by_label("Name", exact=True).fill("Carol")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url("**/signup")
    await expect(page.get_by_role("heading", name="Check your mail")).to_be_visible()


def verification_mails(page: Page) -> Locator:
    """The mailbox's mails to EMAIL that carry a verification link."""
    return page.locator("article.mail").filter(has_text=SUBJECT).filter(has_text=EMAIL)


async def test_signing_up_in_a_browser_verifies_through_the_mailbox_and_lands_on_the_app(
    tab: Tab, served: Served, pool: asyncpg.Pool
) -> None:
    auth = await relying_app(served, pool)
    page = tab.page
    await page.goto(served.base_url + auth.url())
    assert urlsplit(page.url).path == "/login"
    await page.get_by_role("link", name="Create an account").click()
    assert urlsplit(page.url).path == "/signup"
    await expect(page.get_by_text("Browser Test App")).to_be_visible()
    await screenshot(page, "signup-page")
    await sign_up(page)
    assert await verified_state(pool) == (False, True)

    await page.goto(f"{served.base_url}/demo/mailbox")
    await expect(verification_mails(page)).to_have_count(1)
    await verification_mails(page).get_by_role("link", name="/verify-email?token=").click()
    assert urlsplit(page.url).path == "/verify-email"
    await expect(page.get_by_role("heading", name="Verify your address")).to_be_visible()
    assert await verified_state(pool) == (False, True), "the link's GET must only look"

    await page.get_by_role("button", name="Verify address").click()
    await page.wait_for_url("**/login?**")
    assert await verified_state(pool) == (True, False)
    await expect(page.get_by_role("status")).to_have_text(VERIFIED)
    await expect(page.get_by_label("Email", exact=True)).to_have_value(EMAIL)
    await expect(page.get_by_label("Password", exact=True)).to_be_focused()  # the email is there
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{auth.redirect_uri}?**")

    landed = urlsplit(page.url)
    assert f"{landed.scheme}://{landed.netloc}{landed.path}" == auth.redirect_uri
    query = {key: values[0] for key, values in parse_qs(landed.query).items()}
    assert query.keys() == {"code", "state", "iss"}
    assert query["state"] == auth.state
    assert query["iss"] == served.base_url  # RFC 9207
    assert tab.csp_violations() == []


async def test_an_unverified_sign_in_offers_to_send_the_mail_again_and_it_arrives(
    tab: Tab, served: Served, pool: asyncpg.Pool
) -> None:
    auth = await relying_app(served, pool)
    page = tab.page
    await page.goto(f"{served.base_url}/signup")
    await sign_up(page)

    await page.goto(served.base_url + auth.url())
    await page.get_by_label("Email", exact=True).fill(EMAIL)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    async with page.expect_navigation() as navigation:
        await page.get_by_role("button", name="Sign in").click()
    response = await navigation.value
    assert response is not None
    assert response.status == 403
    await expect(page.get_by_role("heading", name="Check your mail")).to_be_visible()
    await expect(page.get_by_text(f"Your address {EMAIL} is not verified yet.")).to_be_visible()

    await page.get_by_role("button", name="Send the mail again").click()
    await page.wait_for_url("**/verify-email/resend")
    await expect(page.get_by_text(f"We sent a new mail to {EMAIL}.")).to_be_visible()
    await page.goto(f"{served.base_url}/demo/mailbox")
    await expect(verification_mails(page)).to_have_count(2)
    assert await verified_state(pool) == (False, True)
    assert tab.csp_violations() == []
