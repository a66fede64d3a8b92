"""``/account/security`` through the running app: an authenticator app set up from the key the
page shows (codes computed by ``pyotp``), its QR code an inline SVG the CSP allows, removal with
the current password, recovery codes shown once or downloaded, and what every form refuses."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from html import unescape

import asyncpg
import httpx
import pyotp
import pytest

from idp.accounts.profile import WRONG_CURRENT
from idp.clock import FrozenClock
from idp.db import second_factors
from idp.mfa.enrolment import CODE_WRONG
from idp.mfa.recovery import RecoveryHasher
from idp.settings import Settings
from idp.web.security import HTML_HEADERS
from tests.conftest import Instance, InstanceFactory
from tests.factories import PASSWORD, assert_security_headers, make_user, queued_mail
from tests.oauth.flow import hidden_fields

EMAIL = "alice@example.com"
SECURITY = "/account/security"
_KEY = re.compile(r'<code class="key">([A-Z2-7 ]+)</code>')
_SVG = re.compile(r"<svg.*?</svg>", re.DOTALL)
_CODE = re.compile(r"<li><code>([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})</code></li>")


@pytest.fixture
async def app(app_instance: InstanceFactory, pool: asyncpg.Pool) -> AsyncIterator[Instance]:
    """Alice signed in on a running app."""
    await make_user(pool, EMAIL, PASSWORD)
    async with app_instance() as instance:
        form = await instance.client.get("/account/sign-in")
        data = {**hidden_fields(form.text), "email": EMAIL, "password": PASSWORD}
        signed = await instance.client.post("/account/sign-in", data=data)
        assert signed.headers["location"] == "/account", signed.text
        yield instance


async def page(http: httpx.AsyncClient) -> str:
    answer = await http.get(SECURITY)
    assert answer.status_code == 200, answer.text
    return answer.text


async def submit(http: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    """Post one of the page's forms, with the CSRF token the page carries."""
    csrf = hidden_fields(await page(http))["csrf_token"]
    return await http.post(path, data={"csrf_token": csrf, **fields})


def done(answer: httpx.Response, code: str) -> None:
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{SECURITY}?done={code}"


def key_of(html: str) -> str:
    found = _KEY.search(html)
    assert found is not None, html
    return found[1].replace(" ", "")


async def set_up(app: Instance, clock: FrozenClock) -> str:
    """The app set up through the page; its key."""
    shown = await submit(app.client, f"{SECURITY}/totp")
    assert shown.status_code == 200, shown.text
    key = key_of(shown.text)
    code = pyotp.TOTP(key).at(clock.now())
    done(await submit(app.client, f"{SECURITY}/totp/confirm", code=code), "totp")
    return key


async def mfa_actions(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT action FROM audit_log WHERE action LIKE 'mfa.%' ORDER BY id")
    return [row["action"] for row in rows]


async def test_the_account_page_and_the_security_page_link_to_each_other(app: Instance) -> None:
    account = await app.client.get("/account")
    assert f'href="{SECURITY}"' in account.text
    assert 'href="/account"' in await page(app.client)


async def test_without_a_session_the_page_leads_to_the_sign_in(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance() as instance:
        answer = await instance.client.get(SECURITY)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/account/sign-in"


async def test_the_key_on_the_page_gives_the_codes_that_set_up_the_app(
    app: Instance, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    shown = await submit(app.client, f"{SECURITY}/totp")
    assert shown.status_code == 200, shown.text
    assert_security_headers(shown)
    key = key_of(shown.text)
    assert len(key) == 32
    assert key.encode() not in await pool.fetchval("SELECT secret_sealed FROM totp_credentials")
    right = pyotp.TOTP(key).at(clock.now())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    refused = await submit(app.client, f"{SECURITY}/totp/confirm", code=wrong)
    assert refused.status_code == 400
    assert CODE_WRONG in unescape(refused.text)
    assert key_of(refused.text) == key, "the same key again, to try another code"
    assert await pool.fetchval("SELECT confirmed_at FROM totp_credentials") is None
    done(await submit(app.client, f"{SECURITY}/totp/confirm", code=right), "totp")
    row = await pool.fetchrow("SELECT confirmed_at, last_step FROM totp_credentials")
    assert row is not None
    assert row["confirmed_at"] == clock.now()
    assert row["last_step"] == int(clock.now().timestamp()) // 30, "the confirming code is used"
    shown_after = await page(app.client)
    assert "Set up since" in shown_after
    assert key not in shown_after.replace(" ", "")
    assert not _KEY.search(shown_after)
    assert await mfa_actions(pool) == ["mfa.totp_begun", "mfa.totp_enrolled"]


async def test_the_qr_code_is_an_inline_svg_without_style_or_script(
    app: Instance, clock: FrozenClock
) -> None:
    shown = await submit(app.client, f"{SECURITY}/totp")
    [svg] = _SVG.findall(shown.text)
    root = ET.fromstring(svg)  # noqa: S314 (our own page's markup)
    assert root.tag == "svg"
    assert root.find("path") is not None
    assert "viewBox" in root.attrib
    html = shown.text.lower()
    assert "<script" not in svg.lower()
    # The page's only scripts: the passkey options as data, and idp's own static file.
    assert set(re.findall(r"<script[^>]*>", html)) <= {
        '<script type="application/json" id="passkey-options">',
        '<script src="/static/passkey.js">',
    }
    assert not re.search(r"\son[a-z]+=", html), "no inline event handler"
    assert "<style" not in html
    assert " style=" not in html
    assert "data:" not in html
    csp = shown.headers["content-security-policy"]
    assert csp == HTML_HEADERS["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp


async def test_removing_the_app_needs_the_current_password(
    app: Instance, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    await set_up(app, clock)
    refused = await submit(app.client, f"{SECURITY}/totp/remove", password="wrong guess")
    assert refused.status_code == 400
    assert WRONG_CURRENT in unescape(refused.text)
    assert "wrong guess" not in refused.text
    assert await pool.fetchval("SELECT count(*) FROM totp_credentials") == 1
    done(await submit(app.client, f"{SECURITY}/totp/remove", password=PASSWORD), "totp-removed")
    assert await pool.fetchval("SELECT count(*) FROM totp_credentials") == 0
    assert "Not set up" in await page(app.client)
    done(await submit(app.client, f"{SECURITY}/totp/remove", password=PASSWORD), "nothing")


async def test_wrong_passwords_to_remove_the_app_count_toward_the_sign_in_lock(
    app: Instance, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    await set_up(app, clock)
    statuses = [
        (await submit(app.client, f"{SECURITY}/totp/remove", password=f"guess {n}")).status_code
        for n in range(7)
    ]
    assert statuses == [400] * 6 + [429]
    locked = await submit(app.client, f"{SECURITY}/totp/remove", password=PASSWORD)
    assert locked.status_code == 429, "the right password waits for the lock too"
    assert "Too many wrong passwords" in locked.text
    assert await pool.fetchval("SELECT count(*) FROM totp_credentials") == 1


async def test_recovery_codes_are_shown_once_and_new_ones_void_the_old(
    app: Instance, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    await set_up(app, clock)
    assert "None yet." in await page(app.client)
    shown = await submit(app.client, f"{SECURITY}/recovery-codes", password=PASSWORD)
    assert shown.status_code == 200, shown.text
    assert_security_headers(shown)
    first = _CODE.findall(shown.text)
    assert len(first) == len(set(first)) == 10
    later = await page(app.client)
    assert "10 of 10 unused." in later
    assert not _CODE.search(later)
    assert not any(code in later for code in first)
    assert settings.key_encryption_key is not None
    hasher = RecoveryHasher(settings.key_encryption_key)
    stored = {row["code_hash"] for row in await pool.fetch("SELECT code_hash FROM recovery_codes")}
    assert stored == {hasher.hash(code) for code in first}
    again = await submit(app.client, f"{SECURITY}/recovery-codes", password=PASSWORD)
    second = _CODE.findall(again.text)
    assert len(second) == 10
    assert not set(first) & set(second)
    user_id = await pool.fetchval("SELECT id FROM users")
    old, new = hasher.hash(first[0]), hasher.hash(second[0])
    assert old is not None
    assert new is not None
    assert not await second_factors.use_recovery_code(pool, user_id, old, clock.now())
    assert await second_factors.use_recovery_code(pool, user_id, new, clock.now())
    assert "9 of 10 unused." in await page(app.client)


async def test_recovery_codes_download_as_a_text_attachment(
    app: Instance, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    await set_up(app, clock)
    answer = await submit(
        app.client, f"{SECURITY}/recovery-codes", password=PASSWORD, format="text"
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    disposition = answer.headers["content-disposition"]
    assert disposition == 'attachment; filename="idp-recovery-codes.txt"'
    assert answer.headers["cache-control"] == "no-store"
    codes = re.findall(r"^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$", answer.text, re.MULTILINE)
    assert len(set(codes)) == 10
    assert settings.key_encryption_key is not None
    hasher = RecoveryHasher(settings.key_encryption_key)
    stored = {row["code_hash"] for row in await pool.fetch("SELECT code_hash FROM recovery_codes")}
    assert stored == {hasher.hash(code) for code in codes}


async def test_recovery_codes_need_the_current_password_and_a_set_up_app(
    app: Instance, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    without_app = await submit(app.client, f"{SECURITY}/recovery-codes", password=PASSWORD)
    assert without_app.status_code == 409
    assert not _CODE.search(without_app.text)
    await set_up(app, clock)
    wrong = await submit(app.client, f"{SECURITY}/recovery-codes", password="wrong guess")
    assert wrong.status_code == 400
    assert WRONG_CURRENT in unescape(wrong.text)
    assert not _CODE.search(wrong.text)
    assert await pool.fetchval("SELECT count(*) FROM recovery_codes") == 0


async def test_each_change_mails_a_notice(
    app: Instance, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    await set_up(app, clock)
    await submit(app.client, f"{SECURITY}/recovery-codes", password=PASSWORD)
    done(await submit(app.client, f"{SECURITY}/totp/remove", password=PASSWORD), "totp-removed")
    mails = await queued_mail(pool, app.state["mailing"].outbox)
    assert [(mail.to, mail.template) for mail in mails] == [(EMAIL, "mfa_changed")] * 3
    assert "An authenticator app was added to your account" in mails[0].text
    assert "New recovery codes were created for your account" in mails[1].text
    assert "The authenticator app was removed from your account" in mails[2].text


FORMS = [
    (f"{SECURITY}/totp", {}),
    (f"{SECURITY}/totp/confirm", {"code": "123456"}),
    (f"{SECURITY}/totp/remove", {"password": PASSWORD}),
    (f"{SECURITY}/recovery-codes", {"password": PASSWORD}),
    (f"{SECURITY}/recovery-codes", {"password": PASSWORD, "format": "text"}),
]
STATE = """
SELECT (SELECT coalesce(string_agg(secret_sealed::text || coalesce(confirmed_at::text, '-')
                                   || coalesce(last_step::text, '-'), ','), '')
        FROM totp_credentials)
    || (SELECT coalesce(string_agg(code_hash::text, ',' ORDER BY code_hash), '')
        FROM recovery_codes)
    || (SELECT count(*)::text FROM mail_outbox)
"""


@pytest.mark.parametrize(("path", "fields"), FORMS)
@pytest.mark.parametrize("csrf", [None, "0" * 64, "other-session"])
async def test_a_post_without_this_sessions_csrf_token_changes_nothing(
    app: Instance, pool: asyncpg.Pool, clock: FrozenClock, path: str, fields: dict[str, str],
    csrf: str | None,
) -> None:  # fmt: skip
    await set_up(app, clock)
    await submit(app.client, f"{SECURITY}/recovery-codes", password=PASSWORD)
    if csrf == "other-session":  # a real token, of another session
        csrf = app.state["cookies"].csrf_token("account", "another-session-cookie")
    before = await pool.fetchval(STATE)
    data = {"pad": ""} | fields | ({"csrf_token": csrf} if csrf else {})
    answer = await app.client.post(path, data=data)
    assert answer.status_code == 400
    assert "This form has expired" in answer.text
    assert_security_headers(answer)
    assert not _CODE.search(answer.text)
    assert not _KEY.search(answer.text)
    assert await pool.fetchval(STATE) == before


@pytest.mark.parametrize(("path", "fields"), FORMS)
async def test_a_get_of_a_form_path_changes_and_shows_nothing(
    app: Instance, pool: asyncpg.Pool, clock: FrozenClock, path: str, fields: dict[str, str]
) -> None:
    await set_up(app, clock)
    csrf = hidden_fields(await page(app.client))["csrf_token"]
    before = await pool.fetchval(STATE)
    answer = await app.client.get(path, params={**fields, "csrf_token": csrf})
    assert answer.status_code == 405
    assert await pool.fetchval(STATE) == before
