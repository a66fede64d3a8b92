"""Passkeys in a real browser (Debian's Chromium over real HTTP, JavaScript on), with a CDP virtual
authenticator (a platform authenticator with resident keys and user verification): added on
/account/security, then a relying app's sign-in with "Sign in with a passkey" and neither email
nor password, ending with an ID token whose ``amr`` says a key and user verification (RFC 8176
§2: "hwk" or "swk", "user") and whose ``acr`` is "phr" (OpenID EAP ACR Values 1.0 §2); a passkey
as the second factor after a password; a step-up to ``acr_values=phr`` that asks for the passkey
only; the pages under the CSP; the login page without JavaScript; and, where the issuer is an IP
address (no RP ID can be one, WebAuthn L2 §5.1.3), no passkey controls at all.

The served app's issuer is ``http://localhost:PORT`` (bound to 127.0.0.1): ``localhost`` is a
secure context and a valid RP ID. It runs on the test's frozen clock set to now, so TOTP codes
are computed for the app's time (``pyotp.TOTP(key).at(clock.now())``).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pyotp
import pytest
from playwright.async_api import CDPSession, Page, expect

from idp.clock import FrozenClock
from idp.db.users import User
from idp.settings import Settings
from tests.browser import OpenTab, Tab, id_token_claims, landed_code, relying_app, screenshot
from tests.conftest import InstanceFactory, Served, serving
from tests.factories import PASSWORD, enrol_totp, make_client, make_user
from tests.oauth.flow import Authorization, hidden_fields

EMAIL = "alice@example.com"
PHR = "phr"
KEY_NAME = "Test laptop"
ADDED = "Your passkey is added. You can sign in with it, without your password."
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@pytest.fixture
def app_clock(clock: FrozenClock) -> FrozenClock:
    """The test's frozen clock, set to now, as the served app's clock."""
    clock.set(datetime.now(UTC))
    return clock


@pytest.fixture
async def served(
    settings: Settings, pool: asyncpg.Pool, app_clock: FrozenClock
) -> AsyncIterator[Served]:
    """The app on ``http://localhost:PORT`` (an RP ID is never an IP address), on ``app_clock``."""
    async with serving(settings, clock=app_clock, hostname="localhost") as started:
        yield started


async def authenticator(page: Page) -> tuple[CDPSession, str]:
    """A virtual platform authenticator in the page's browser: the CDP session and its id."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    return cdp, added["authenticatorId"]


async def credentials(cdp: CDPSession, authenticator_id: str) -> list[dict[str, Any]]:
    found = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    listed: list[dict[str, Any]] = found["credentials"]
    return listed


async def presence(cdp: CDPSession, authenticator_id: str, enabled: bool) -> None:
    """Whether the virtual authenticator answers new requests by itself (a touch, a fingerprint)."""
    options = {"authenticatorId": authenticator_id, "enabled": enabled}
    await cdp.send("WebAuthn.setAutomaticPresenceSimulation", options)


async def sign_in_to_account(page: Page, served: Served) -> None:
    await page.goto(f"{served.base_url}/account/sign-in")
    await page.get_by_label("Email", exact=True).fill(EMAIL)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(f"{served.base_url}/account")


async def add_passkey(page: Page, served: Served, name: str) -> None:
    """/account/security: the passkey named and added; the page says so and lists it."""
    await page.goto(f"{served.base_url}/account/security")
    passkeys = page.locator("section#passkeys")
    await passkeys.get_by_label("Name it").fill(name)
    await passkeys.get_by_role("button", name="Add a passkey").click()
    await page.wait_for_url(f"{served.base_url}/account/security?done=passkey")
    await expect(page.get_by_role("status")).to_have_text(ADDED)
    await expect(passkeys.locator("ul.listing strong")).to_have_text([name])


async def sign_out(page: Page, served: Served) -> None:
    await page.goto(f"{served.base_url}/logout")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{served.base_url}/logout")


async def passkey_added(
    page: Page, served: Served, pool: asyncpg.Pool
) -> tuple[User, Authorization, CDPSession, str]:
    """Alice, who added a passkey (held by the page's virtual authenticator) on the security page
    and signed out; the relying app's authorization request; the authenticator's CDP session
    and id."""
    user = await make_user(pool, EMAIL)
    auth = await relying_app(served, pool, "127.0.0.1")
    cdp, authenticator_id = await authenticator(page)
    await sign_in_to_account(page, served)
    await add_passkey(page, served, KEY_NAME)
    await sign_out(page, served)
    return user, auth, cdp, authenticator_id


async def password_step(
    page: Page, served: Served, auth: Authorization, cdp: CDPSession, authenticator_id: str
) -> None:
    """The relying app's authorization request, the password: a second factor is asked. The
    virtual authenticator holds back on the login page (else it answers the email field's
    conditional request with the passkey, and no password is asked)."""
    await presence(cdp, authenticator_id, False)
    await page.goto(served.base_url + auth.url())
    assert urlsplit(page.url).path == "/login"
    await page.get_by_label("Email", exact=True).fill(EMAIL)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(f"{served.base_url}/login/second-factor")
    await expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    await presence(cdp, authenticator_id, True)


async def session_amr(pool: asyncpg.Pool, user_id: uuid.UUID) -> list[str]:
    """The amr of the user's most recent live session row."""
    amr: list[str] = await pool.fetchval(
        "SELECT amr FROM sessions WHERE user_id = $1 AND ended_at IS NULL"
        " ORDER BY created_at DESC LIMIT 1",
        user_id,
    )
    return amr


async def test_a_passkey_added_on_the_security_page_signs_in_without_email_or_password(
    tab: Tab, served: Served, pool: asyncpg.Pool
) -> None:
    user = await make_user(pool, EMAIL)
    auth = await relying_app(served, pool, "127.0.0.1")
    page = tab.page
    cdp, authenticator_id = await authenticator(page)
    await sign_in_to_account(page, served)
    await add_passkey(page, served, KEY_NAME)
    await screenshot(page, "passkey-security")

    held = await credentials(cdp, authenticator_id)
    assert len(held) == 1
    assert held[0]["isResidentCredential"] is True
    assert held[0]["rpId"] == "localhost"
    stored = await pool.fetch("SELECT credential_id, user_id, name FROM passkeys")
    assert [(row["user_id"], row["name"]) for row in stored] == [(user.id, KEY_NAME)]
    assert stored[0]["credential_id"] == _b64decode(held[0]["credentialId"])
    await sign_out(page, served)

    # The email field offers passkeys in its autofill (conditional mediation, WebAuthn L2
    # §5.1.4 "conditional"): a person who has not picked one leaves that request pending, and it
    # must not stand in the button's way. The virtual authenticator answers a request at once
    # while it simulates presence, so it does not while the page starts its conditional request.
    await presence(cdp, authenticator_id, False)
    await page.goto(served.base_url + auth.url())
    assert urlsplit(page.url).path == "/login"
    await expect(page.get_by_label("Email", exact=True)).to_have_attribute(
        "autocomplete", "username webauthn"
    )
    assert await page.evaluate("PublicKeyCredential.isConditionalMediationAvailable()") is True
    await presence(cdp, authenticator_id, True)  # not for the pending request: for the next
    button = page.get_by_role("button", name="Sign in with a passkey")
    await expect(button).to_be_visible()
    await screenshot(page, "passkey-login")
    await button.click()
    await page.wait_for_url(f"{auth.redirect_uri}?**")
    claims = await id_token_claims(served, auth, landed_code(page, auth))
    assert claims["sub"] == str(user.id)
    assert {"hwk", "user"} <= set(claims["amr"]) or {"swk", "user"} <= set(claims["amr"])
    assert "pwd" not in claims["amr"]
    assert claims["acr"] == PHR
    amr = await session_amr(pool, user.id)
    assert {"user", "mfa"} <= set(amr)
    assert {"hwk", "swk"} & set(amr)
    assert "pwd" not in amr
    used = await pool.fetchval("SELECT last_used_at FROM passkeys")
    assert used is not None
    assert tab.csp_violations() == []


async def test_the_email_fields_passkey_autofill_signs_in(
    tab: Tab, served: Served, pool: asyncpg.Pool
) -> None:
    """Conditional mediation: the virtual authenticator, simulating presence, answers the login
    page's conditional request as a person picking the passkey in the autofill would; the form
    goes off with no click."""
    page = tab.page
    user, auth, _, _ = await passkey_added(page, served, pool)

    await page.goto(served.base_url + auth.url())
    await page.wait_for_url(f"{auth.redirect_uri}?**")
    claims = await id_token_claims(served, auth, landed_code(page, auth))
    assert claims["sub"] == str(user.id)
    assert claims["acr"] == PHR
    assert tab.csp_violations() == []


async def test_a_passkey_is_the_second_factor_after_a_password(
    tab: Tab, served: Served, pool: asyncpg.Pool
) -> None:
    page = tab.page
    user, auth, cdp, authenticator_id = await passkey_added(page, served, pool)

    await password_step(page, served, auth, cdp, authenticator_id)
    await screenshot(page, "passkey-second-factor")
    await page.get_by_role("button", name="Use your passkey").click()
    await page.wait_for_url(f"{auth.redirect_uri}?**")
    claims = await id_token_claims(served, auth, landed_code(page, auth))
    assert claims["sub"] == str(user.id)
    assert {"pwd", "hwk"} <= set(claims["amr"]) or {"pwd", "swk"} <= set(claims["amr"])
    assert claims["acr"] == PHR
    assert {"pwd", "mfa"} <= set(await session_amr(pool, user.id))
    assert tab.csp_violations() == []


async def test_a_step_up_to_phr_after_password_and_code_asks_for_the_passkey_only(
    tab: Tab, served: Served, pool: asyncpg.Pool, app_clock: FrozenClock, kek: bytes
) -> None:
    page = tab.page
    user, auth, cdp, authenticator_id = await passkey_added(page, served, pool)
    key = pyotp.random_base32()
    await enrol_totp(pool, kek, user.id, key, app_clock.now())

    # The password and a code: acr mfa, not phr.
    await password_step(page, served, auth, cdp, authenticator_id)
    await page.get_by_label("Or enter the code from your authenticator app").fill(
        pyotp.TOTP(key).at(app_clock.now())
    )
    await page.get_by_role("button", name="Verify").click()
    await page.wait_for_url(f"{auth.redirect_uri}?**")
    first = await id_token_claims(served, auth, landed_code(page, auth))
    assert {"pwd", "otp"} <= set(first["amr"])
    assert first["acr"] == "urn:idp:acr:mfa"

    # The app asks for phr: the same session, the passkey only (no code field, no password).
    stepped = Authorization(auth.client_id, auth.redirect_uri)
    await page.goto(served.base_url + stepped.url(acr_values=PHR))
    assert urlsplit(page.url).path == "/login/second-factor"
    await expect(page.get_by_role("button", name="Use your passkey")).to_be_visible()
    assert await page.locator("input[name=code]").count() == 0
    assert await page.locator("input[name=password]").count() == 0
    await page.get_by_role("button", name="Use your passkey").click()
    await page.wait_for_url(f"{stepped.redirect_uri}?**")
    claims = await id_token_claims(served, stepped, landed_code(page, stepped))
    assert claims["sub"] == str(user.id)
    assert claims["acr"] == PHR
    assert {"hwk", "user"} <= set(claims["amr"]) or {"swk", "user"} <= set(claims["amr"])
    assert {"pwd", "otp"} <= set(claims["amr"])  # the step-up keeps the methods used before
    assert claims["sid"] == first["sid"]  # the session was upgraded, not replaced
    amr = await session_amr(pool, user.id)
    assert {"hwk", "swk"} & set(amr)
    assert "user" in amr
    assert tab.csp_violations() == []


async def test_without_javascript_the_login_page_signs_in_with_a_password_and_shows_no_passkey(
    tabs: OpenTab, served: Served, pool: asyncpg.Pool
) -> None:
    user = await make_user(pool, EMAIL)
    auth = await relying_app(served, pool, "127.0.0.1")
    tab = await tabs(java_script_enabled=False)
    page = tab.page
    await page.goto(served.base_url + auth.url())
    assert urlsplit(page.url).path == "/login"
    await expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    assert await page.get_by_role("button", name="Sign in with a passkey").count() == 0
    await expect(page.get_by_text("Sign in with a passkey")).to_be_hidden()
    await page.get_by_label("Email", exact=True).fill(EMAIL)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(f"{auth.redirect_uri}?**")
    claims = await id_token_claims(served, auth, landed_code(page, auth))
    assert claims["sub"] == str(user.id)
    assert claims["amr"] == ["pwd"]
    assert tab.csp_violations() == []


async def test_an_issuer_on_an_ip_address_offers_no_passkeys_and_says_why(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """No RP ID can be an IP address (WebAuthn L2 §5.1.3 step 8): no passkey form on the login
    pages, and the security page says why instead of offering one."""
    await make_user(pool, EMAIL, PASSWORD)
    issuer = "http://127.0.0.1:8000"
    client, _ = await make_client(
        pool,
        replace(settings, issuer=issuer),
        grant_types=("authorization_code",),
        redirect_uris=(f"{issuer}/cb-test",),
        scopes=("openid",),
        public=True,
        first_party=True,
    )
    auth = Authorization(client.client_id, f"{issuer}/cb-test", scope="openid")
    async with app_instance(issuer=issuer) as instance:
        http = instance.client
        asked = await http.get(auth.url())
        assert urlsplit(asked.headers["location"]).path == "/login", asked.text
        relying = await http.get(asked.headers["location"])
        account = await http.get("/account/sign-in")
        for login in (relying, account):
            assert login.status_code == 200, login.text
            assert 'name="password"' in login.text
            assert "/login/passkey" not in login.text
            assert "data-passkey" not in login.text
            assert "Sign in with a passkey" not in login.text
            assert "webauthn" not in login.text
            assert "/static/passkey.js" not in login.text
        data = {**hidden_fields(account.text), "email": EMAIL, "password": PASSWORD}
        signed = await http.post("/account/sign-in", data=data)
        assert signed.headers["location"] == "/account", signed.text
        page = await http.get("/account/security")
        assert page.status_code == 200, page.text
        assert "Passkeys are not available here" in page.text
        assert "a WebAuthn RP ID is never an IP address" in page.text
        assert "Add a passkey" not in page.text
        assert "data-passkey" not in page.text
        assert "/account/security/passkeys" not in page.text
        assert "/static/passkey.js" not in page.text


def _b64decode(text: str) -> bytes:
    """CDP's credential ids are standard base64."""
    return base64.b64decode(text + "=" * (-len(text) % 4))
