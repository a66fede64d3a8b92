"""An authenticator app in a real browser (Debian's Chromium over real HTTP, JavaScript off):
set up on /account/security from the key shown on the page, recovery codes made, then a relying
app's sign-in with the password and a code on /login/second-factor, ending with an ID token whose
``amr`` and ``acr`` say so (RFC 8176 §2; OIDC Core §2). A code is accepted once per time step and
a recovery code once (NIST SP 800-63B §5.1.4.2, §5.1.2.2).

The served app runs on the test's frozen clock (set to now, so cookies and tokens meet the real
world): codes are computed for the app's time, ``pyotp.TOTP(key).at(clock.now())``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import pyotp
import pytest
from playwright.async_api import Page, expect

from idp.clock import FrozenClock
from idp.settings import Settings
from tests.browser import OpenTab, Tab, id_token_claims, landed_code, relying_app, screenshot
from tests.conftest import Served, serving
from tests.factories import PASSWORD, make_user
from tests.oauth.flow import Authorization

EMAIL = "alice@example.com"
WRONG_CODE = "That code is not valid. Enter a new code from your app, or a recovery code."
MFA = "urn:idp:acr:mfa"


@pytest.fixture
def app_clock(clock: FrozenClock) -> FrozenClock:
    """The test's frozen clock, set to now, as the served app's clock."""
    clock.set(datetime.now(UTC))
    return clock


@pytest.fixture
async def served(
    settings: Settings, pool: asyncpg.Pool, app_clock: FrozenClock
) -> AsyncIterator[Served]:
    """The app served on ``app_clock``."""
    async with serving(settings, clock=app_clock) as started:
        yield started


@pytest.fixture
async def tab(tabs: OpenTab) -> Tab:
    """A browser without JavaScript: every page of the flow works with plain forms."""
    return await tabs(java_script_enabled=False)


async def sign_in_to_account(page: Page, served: Served) -> None:
    await page.goto(f"{served.base_url}/account/sign-in")
    await page.get_by_label("Email", exact=True).fill(EMAIL)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{served.base_url}/account")


async def set_up_authenticator_app(page: Page, served: Served, clock: FrozenClock) -> str:
    """/account/security: the app set up from the key shown in text; the key."""
    await page.goto(f"{served.base_url}/account/security")
    await page.get_by_role("button", name="Set up an authenticator app").click()
    key = "".join((await page.locator("code.key").inner_text()).split())
    await screenshot(page, "totp-setup")
    code = pyotp.TOTP(key).at(clock.now())
    await page.get_by_label("The 6-digit code your app shows").fill(code)
    await page.get_by_role("button", name="Confirm and turn on").click()
    await expect(page.get_by_role("status")).to_contain_text("Your authenticator app is set up")
    await expect(page.get_by_text("Set up since")).to_be_visible()
    return key


async def make_recovery_codes(page: Page) -> list[str]:
    recovery = page.locator("section#recovery")
    await recovery.get_by_label("Current password").fill(PASSWORD)
    await recovery.get_by_role("button", name="Create new codes", exact=True).click()
    codes = await page.locator("ol.codes code").all_inner_texts()
    assert len(codes) == 10
    return codes


async def sign_out(page: Page, served: Served) -> None:
    await page.goto(f"{served.base_url}/logout")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{served.base_url}/logout")


async def password_step(page: Page, served: Served, auth: Authorization) -> None:
    """The relying app's authorization request, the password: the code is asked."""
    await page.goto(served.base_url + auth.url())
    assert urlsplit(page.url).path == "/login"
    await page.get_by_label("Email", exact=True).fill(EMAIL)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{served.base_url}/login/second-factor")
    await expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()


async def send_code(page: Page, code: str) -> int:
    """Type ``code`` on /login/second-factor and send it: the answer's status."""
    await page.get_by_label("Enter the code from your authenticator app").fill(code)
    async with page.expect_navigation() as navigation:
        await page.get_by_role("button", name="Verify").click()
    response = await navigation.value
    assert response is not None
    return response.status


async def test_an_authenticator_app_set_up_in_the_browser_signs_in_with_acr_mfa(
    tab: Tab, served: Served, pool: asyncpg.Pool, app_clock: FrozenClock
) -> None:
    user = await make_user(pool, EMAIL)
    auth = await relying_app(served, pool)
    page = tab.page
    await sign_in_to_account(page, served)
    key = await set_up_authenticator_app(page, served, app_clock)
    # The app runs on the injected clock (not the system's): codes are computed for its time.
    confirmed = await pool.fetchval(
        "SELECT confirmed_at FROM totp_credentials WHERE user_id = $1", user.id
    )
    assert confirmed == app_clock.now()
    recovery = await make_recovery_codes(page)
    await sign_out(page, served)

    app_clock.advance(timedelta(seconds=30))  # the setup's step is spent: the next one
    code = pyotp.TOTP(key).at(app_clock.now())
    await password_step(page, served, auth)
    await screenshot(page, "second-factor-page")
    assert await send_code(page, code) != 401
    claims = await id_token_claims(served, auth, landed_code(page, auth))
    assert claims["sub"] == str(user.id)
    assert {"pwd", "otp"} <= set(claims["amr"])
    assert claims["acr"] == MFA
    assert tab.csp_violations() == []

    # The same code again, within the same time step, on a fresh sign-in: refused.
    await sign_out(page, served)
    again = Authorization(auth.client_id, auth.redirect_uri)
    await password_step(page, served, again)
    assert await send_code(page, code) == 401
    await expect(page.get_by_role("alert")).to_have_text(WRONG_CODE)
    assert urlsplit(page.url).path == "/login/second-factor"

    # A recovery code instead, in the same field: it works, once.
    await send_code(page, recovery[0])
    claims = await id_token_claims(served, again, landed_code(page, again))
    assert claims["acr"] == MFA
    await sign_out(page, served)
    last = Authorization(auth.client_id, auth.redirect_uri)
    await password_step(page, served, last)
    assert await send_code(page, recovery[0]) == 401
    await expect(page.get_by_role("alert")).to_have_text(WRONG_CODE)
    assert tab.csp_violations() == []
