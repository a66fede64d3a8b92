"""``/account``: a signed-in person's own page (profile, email, password, sessions, connected
apps), its sign-in, and what each of its forms changes. Browsers are separate cookie jars on
one running app, each with its own address and User-Agent."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from idp.accounts.password_policy import HAS_EMAIL, TOO_SHORT
from idp.accounts.profile import NAME_TOO_LONG, PASSWORDS_DIFFER, WRONG_CURRENT
from idp.app import create_app
from idp.clock import FrozenClock
from idp.hashing import digest
from idp.mail.message import Mail
from idp.settings import Settings
from idp.web.state import AppState
from tests.factories import (
    PASSWORD,
    assert_security_headers,
    make_client,
    make_user,
    queued_mail,
)
from tests.oauth.flow import (
    REDIRECT,
    Authorization,
    exchange_code,
    hidden_fields,
    query_of,
    refresh,
)

EMAIL = "alice@example.com"
NEW_PASSWORD = "a quiet lantern by the sea"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
HOME_IP, PHONE_IP = "198.51.100.7", "203.0.113.9"
_SID = re.compile(r'<input type="hidden" name="sid" value="([^"]*)">')

Browser = Callable[..., httpx.AsyncClient]


@dataclass
class Site:
    """One running app: its state, and ``browser(ip, agent)`` to open a new browser on it."""

    state: AppState
    browser: Browser


@pytest.fixture
async def site(settings: Settings, clock: FrozenClock, pool: asyncpg.Pool) -> AsyncIterator[Site]:
    del pool  # asked for so the database is emptied before the app starts, not under it
    app = create_app(settings, clock=clock, run_scheduler=False)
    opened: list[httpx.AsyncClient] = []
    async with app.router.lifespan_context(app) as state:
        assert state is not None

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state)
            await app(scope, receive, send)

        def browser(ip: str = HOME_IP, agent: str = FIREFOX) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=with_state, client=(ip, 50000))
            headers = {"user-agent": agent}
            opened.append(
                httpx.AsyncClient(transport=transport, base_url=settings.issuer, headers=headers)
            )
            return opened[-1]

        try:
            yield Site(state, browser)  # type: ignore[arg-type]
        finally:
            for client in opened:
                await client.aclose()


async def sign_in(
    browser: httpx.AsyncClient, email: str = EMAIL, password: str = PASSWORD
) -> httpx.Response:
    """From /account, through its sign-in page, back to /account."""
    start = await browser.get("/account")
    assert start.status_code == 303, start.text
    assert start.headers["location"] == "/account/sign-in"
    form = await browser.get("/account/sign-in")
    assert form.status_code == 200, form.text
    assert 'action="/account/sign-in"' in form.text
    data = {**hidden_fields(form.text), "email": email, "password": password}
    return await browser.post("/account/sign-in", data=data)


async def signed_in(site: Site, ip: str = HOME_IP, agent: str = FIREFOX) -> httpx.AsyncClient:
    browser = site.browser(ip, agent)
    answer = await sign_in(browser)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/account"
    return browser


async def page(browser: httpx.AsyncClient) -> str:
    answer = await browser.get("/account")
    assert answer.status_code == 200, answer.text
    return answer.text


async def submit(browser: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    """Post one of the account page's forms, with the CSRF token the page carries."""
    csrf = hidden_fields(await page(browser))["csrf_token"]
    return await browser.post(path, data={"csrf_token": csrf, **fields})


def done(answer: httpx.Response, code: str) -> None:
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/account?done={code}"


async def authorize_status(browser: httpx.AsyncClient, client_id: str) -> str:
    """Where /authorize sends the browser for a first-party client: the app (signed in) or the
    sign-in page."""
    answer = await browser.get(Authorization(client_id, REDIRECT, scope="openid").url())
    assert answer.status_code == 303, answer.text
    location: str = answer.headers["location"]
    return "signed in" if location.startswith(REDIRECT) else location.partition("?")[0]


async def own_app(pool: asyncpg.Pool, settings: Settings) -> tuple[str, str]:
    client, secret = await make_client(
        pool, settings, name="Own App", grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,), scopes=("openid", "profile"), first_party=True,
    )  # fmt: skip
    return client.client_id, secret


async def other_app(pool: asyncpg.Pool, settings: Settings) -> tuple[str, str]:
    client, secret = await make_client(
        pool, settings, name="Photo Printer", grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,), scopes=("openid", "profile"),
    )  # fmt: skip
    return client.client_id, secret


async def tokens_for(
    browser: httpx.AsyncClient, client_id: str, secret: str, *, consent: bool = False
) -> dict[str, Any]:
    """A signed-in browser through /authorize (and the consent page if asked) to tokens."""
    auth = Authorization(client_id, REDIRECT, scope="openid profile")
    answer = await browser.get(auth.url())
    if consent:
        assert answer.headers["location"].startswith("/consent?"), answer.headers
        form = await browser.get(answer.headers["location"])
        data = {**hidden_fields(form.text), "decision": "allow"}
        answer = await browser.post("/consent", data=data)
    assert answer.headers["location"].startswith(REDIRECT), answer.headers
    code = query_of(answer.headers["location"])["code"]
    exchanged = await exchange_code(browser, client_id, secret, code, auth)
    assert exchanged.status_code == 200, exchanged.text
    tokens: dict[str, Any] = exchanged.json()
    return tokens


async def queued(site: Site) -> list[Mail]:
    return await queued_mail(site.state["pool"], site.state["mailing"].outbox)


async def actions(pool: asyncpg.Pool, prefix: str) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT actor, action FROM audit_log WHERE action LIKE $1 ORDER BY id", f"{prefix}%"
    )
    return [(row["actor"], row["action"]) for row in rows]


# -- signing in to the account page and what it shows --------------------------------------------
async def test_account_without_a_session_signs_in_and_comes_back(
    site: Site, pool: asyncpg.Pool
) -> None:
    user = await make_user(pool, EMAIL, name="Alice Liddell")
    browser = await signed_in(site)
    shown = await browser.get("/account")
    assert shown.status_code == 200
    assert_security_headers(shown)
    assert "Alice Liddell" in shown.text
    assert EMAIL in shown.text
    assert "Firefox on Linux" in shown.text
    assert HOME_IP in shown.text
    assert "This browser" in shown.text
    assert "<script" not in shown.text
    assert await actions(pool, "login.") == [(f"user:{user.id}", "login.succeeded")]


async def test_account_sign_in_refuses_a_wrong_password_and_a_forged_form(
    site: Site, pool: asyncpg.Pool
) -> None:
    await make_user(pool, EMAIL)
    browser = site.browser()
    wrong = await sign_in(browser, password="not the password")
    assert wrong.status_code == 401
    assert "Incorrect email or password." in wrong.text
    forged = await browser.post(
        "/account/sign-in", data={"csrf_token": "0" * 64, "email": EMAIL, "password": PASSWORD}
    )
    assert forged.status_code == 400
    assert (await browser.get("/account")).headers["location"] == "/account/sign-in"


async def test_a_sign_in_through_an_app_also_opens_the_account_page(
    site: Site, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A session from /login records its browser and address too."""
    await make_user(pool, EMAIL)
    client_id, _ = await own_app(pool, settings)
    browser = site.browser(PHONE_IP, SAFARI)
    start = await browser.get(Authorization(client_id, REDIRECT, scope="openid").url())
    form = await browser.get(start.headers["location"])
    data = {**hidden_fields(form.text), "email": EMAIL, "password": PASSWORD}
    assert (await browser.post("/login", data=data)).status_code == 303
    shown = await page(browser)
    assert "Safari on iOS" in shown
    assert PHONE_IP in shown


async def test_the_page_lists_the_apps_the_user_consented_to(
    site: Site, pool: asyncpg.Pool, settings: Settings
) -> None:
    await make_user(pool, EMAIL)
    client_id, secret = await other_app(pool, settings)
    browser = await signed_in(site)
    assert "Photo Printer" not in await page(browser)
    await tokens_for(browser, client_id, secret, consent=True)
    shown = await page(browser)
    assert "Photo Printer" in shown
    assert "openid, profile" in shown
    assert f'name="client_id" value="{client_id}"' in shown


# -- sessions -------------------------------------------------------------------------------------
async def test_signing_out_other_sessions_ends_the_other_browser_and_keeps_this_one(
    site: Site, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, EMAIL)
    client_id, _ = await own_app(pool, settings)
    here = await signed_in(site)
    there = await signed_in(site, PHONE_IP, SAFARI)
    assert await authorize_status(there, client_id) == "signed in"
    listed = await page(here)
    assert "Safari on iOS" in listed
    assert PHONE_IP in listed

    ended = await submit(here, "/account/sessions/end-others")
    done(ended, "others")

    assert await authorize_status(there, client_id) == "/login"
    assert (await there.get("/account")).headers["location"] == "/account/sign-in"
    assert await authorize_status(here, client_id) == "signed in"
    after = (await here.get(ended.headers["location"])).text
    assert "Your other sessions were signed out." in after
    assert PHONE_IP not in after
    assert _SID.findall(after) == []
    assert await actions(pool, "session.") == [(f"user:{user.id}", "session.ended")]


async def test_ending_a_session_revokes_the_refresh_tokens_it_started_and_no_others(
    site: Site, pool: asyncpg.Pool, settings: Settings
) -> None:
    await make_user(pool, EMAIL)
    client_id, secret = await own_app(pool, settings)
    here, there = await signed_in(site), await signed_in(site, PHONE_IP, SAFARI)
    mine, theirs = (
        await tokens_for(here, client_id, secret),
        await tokens_for(there, client_id, secret),
    )
    [sid] = _SID.findall(await page(here))
    done(await submit(here, "/account/sessions/end", sid=sid), "session")

    refused = await refresh(here, (client_id, secret), theirs["refresh_token"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    kept = await refresh(here, (client_id, secret), mine["refresh_token"])
    assert kept.status_code == 200, kept.text
    assert await authorize_status(there, client_id) == "/login"
    assert await authorize_status(here, client_id) == "signed in"


async def test_ending_another_users_session_is_refused_like_an_unknown_one(
    site: Site, pool: asyncpg.Pool
) -> None:
    await make_user(pool, EMAIL)
    await make_user(pool, "bob@example.com", name="Bob")
    alice = await signed_in(site)
    bob = site.browser(PHONE_IP)
    assert (await sign_in(bob, "bob@example.com")).status_code == 303
    bobs_sid = await pool.fetchval("SELECT s.sid FROM sessions s JOIN users u ON u.id = s.user_id "
                                   "WHERE u.email = 'bob@example.com'")  # fmt: skip
    for sid in (bobs_sid, "no-such-session-id"):
        done(await submit(alice, "/account/sessions/end", sid=sid), "nothing")
    assert "Nothing changed" in (await alice.get("/account?done=nothing")).text
    assert "Bob" in await page(bob)
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL") == 0
    assert await actions(pool, "session.") == []


async def test_last_seen_moves_on_use_at_most_once_per_interval(
    site: Site, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    await make_user(pool, EMAIL)
    client_id, _ = await own_app(pool, settings)
    signed_in_at = clock.now()
    browser = await signed_in(site)

    async def last_seen() -> Any:
        return await pool.fetchval("SELECT last_seen_at FROM sessions")

    assert await last_seen() == signed_in_at
    clock.advance(timedelta(minutes=4))
    await page(browser)
    assert await authorize_status(browser, client_id) == "signed in"
    assert await last_seen() == signed_in_at, "within the interval: not written"
    clock.advance(timedelta(minutes=1))
    used_at = clock.now()
    assert await authorize_status(browser, client_id) == "signed in"
    assert await last_seen() == used_at
    clock.advance(timedelta(minutes=6))
    await page(browser)
    assert await last_seen() == clock.now()


# -- connected apps -------------------------------------------------------------------------------
async def test_revoking_an_app_ends_its_tokens_and_asks_for_consent_again(
    site: Site, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, EMAIL)
    client_id, secret = await other_app(pool, settings)
    own_id, own_secret = await own_app(pool, settings)
    browser = await signed_in(site)
    tokens = await tokens_for(browser, client_id, secret, consent=True)
    own = await tokens_for(browser, own_id, own_secret)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await browser.get("/userinfo", headers=bearer)).status_code == 200

    done(await submit(browser, "/account/apps/revoke", client_id=client_id), "app")

    refused = await refresh(browser, (client_id, secret), tokens["refresh_token"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert (await browser.get("/userinfo", headers=bearer)).status_code == 401
    again = await browser.get(Authorization(client_id, REDIRECT, scope="openid").url())
    assert again.headers["location"].startswith("/consent?"), "consent is asked again"
    assert (await refresh(browser, (own_id, own_secret), own["refresh_token"])).status_code == 200
    assert "Photo Printer" not in await page(browser)
    assert await actions(pool, "consent.revoked") == [(f"user:{user.id}", "consent.revoked")]


async def test_revoking_an_app_without_consent_changes_nothing(
    site: Site, pool: asyncpg.Pool, settings: Settings
) -> None:
    await make_user(pool, EMAIL)
    own_id, own_secret = await own_app(pool, settings)
    browser = await signed_in(site)
    own = await tokens_for(browser, own_id, own_secret)
    done(await submit(browser, "/account/apps/revoke", client_id=own_id), "nothing")
    assert (await refresh(browser, (own_id, own_secret), own["refresh_token"])).status_code == 200


# -- password -------------------------------------------------------------------------------------
async def test_changing_the_password_needs_the_current_one(site: Site, pool: asyncpg.Pool) -> None:
    user = await make_user(pool, EMAIL)
    browser = await signed_in(site)
    refused = await submit(
        browser, "/account/password", current_password="wrong guess",
        new_password=NEW_PASSWORD, confirm_password=NEW_PASSWORD,
    )  # fmt: skip
    assert refused.status_code == 400
    assert WRONG_CURRENT in refused.text
    assert "wrong guess" not in refused.text
    assert await pool.fetchval("SELECT password_hash FROM users") == user.password_hash
    assert await actions(pool, "login.failed") == [("anonymous", "login.failed")]
    assert await queued(site) == []


async def test_wrong_current_passwords_count_toward_the_sign_in_lock(
    site: Site, pool: asyncpg.Pool
) -> None:
    await make_user(pool, EMAIL)
    browser = await signed_in(site)
    fields = {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    statuses = [
        (await submit(browser, "/account/password", current_password=f"guess {n}", **fields))
        for n in range(7)
    ]
    assert [answer.status_code for answer in statuses] == [400] * 6 + [429]
    assert "Too many wrong passwords" in statuses[-1].text
    locked = await submit(browser, "/account/password", current_password=PASSWORD, **fields)
    assert locked.status_code == 429, "the right password waits for the lock too"


async def test_a_new_password_is_checked_against_the_policy_one_message_per_rule(
    site: Site, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, EMAIL)
    browser = await signed_in(site)
    short = await submit(
        browser, "/account/password", current_password=PASSWORD,
        new_password="alice1", confirm_password="alice1",
    )  # fmt: skip
    assert short.status_code == 400
    assert TOO_SHORT.format(minimum=settings.password_min_length) in short.text
    assert HAS_EMAIL.replace("'", "&#39;") in short.text
    differ = await submit(
        browser, "/account/password", current_password=PASSWORD,
        new_password=NEW_PASSWORD, confirm_password=NEW_PASSWORD + "!",
    )  # fmt: skip
    assert differ.status_code == 400
    assert PASSWORDS_DIFFER in differ.text
    assert await pool.fetchval("SELECT password_hash FROM users") == user.password_hash


async def test_a_changed_password_signs_in_ends_other_sessions_and_mails_a_notice(
    site: Site, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, EMAIL)
    client_id, _ = await own_app(pool, settings)
    here = await signed_in(site)
    there = await signed_in(site, PHONE_IP, SAFARI)
    changed = await submit(
        here, "/account/password", current_password=PASSWORD,
        new_password=NEW_PASSWORD, confirm_password=NEW_PASSWORD,
    )  # fmt: skip
    done(changed, "password")
    assert "idp_device" in changed.headers.get("set-cookie", ""), "a device cookie for the new hash"

    assert await authorize_status(here, client_id) == "signed in"
    assert await authorize_status(there, client_id) == "/login"
    assert (await sign_in(site.browser(), password=PASSWORD)).status_code == 401
    assert (await sign_in(site.browser(), password=NEW_PASSWORD)).status_code == 303
    [notice] = await queued(site)
    assert (notice.to, notice.template) == (EMAIL, "password_changed")
    assert (f"user:{user.id}", "account.password_changed") in await actions(pool, "account.")


async def test_the_current_password_given_again_is_audited_as_a_reauthentication_not_a_login(
    site: Site, pool: asyncpg.Pool
) -> None:
    """A signed-in user who types the password again for a change starts no session: the audit
    log says the account re-authenticated, and counts one sign-in, the real one."""
    user = await make_user(pool, EMAIL)
    here = await signed_in(site)
    changed = await submit(
        here, "/account/password", current_password=PASSWORD,
        new_password=NEW_PASSWORD, confirm_password=NEW_PASSWORD,
    )  # fmt: skip
    done(changed, "password")
    me = f"user:{user.id}"
    assert await actions(pool, "login.") == [(me, "login.succeeded")]
    assert await actions(pool, "account.") == [
        (me, "account.reauthenticated"), (me, "account.password_changed"),
    ]  # fmt: skip


# -- email ----------------------------------------------------------------------------------------
async def test_changing_the_email_needs_the_current_password(
    site: Site, pool: asyncpg.Pool
) -> None:
    await make_user(pool, EMAIL)
    browser = await signed_in(site)
    refused = await submit(
        browser, "/account/email", email="alice@new.example", password="wrong guess"
    )
    assert refused.status_code == 400
    assert WRONG_CURRENT in refused.text
    assert await queued(site) == []
    assert await pool.fetchval("SELECT count(*) FROM mail_tokens") == 0


async def test_a_new_email_gets_a_confirmation_link_and_the_address_waits_for_it(
    site: Site, pool: asyncpg.Pool
) -> None:
    user = await make_user(pool, EMAIL)
    browser = await signed_in(site)
    done(
        await submit(browser, "/account/email", email="alice@new.example", password=PASSWORD),
        "email",
    )
    [mail] = await queued(site)
    assert (mail.to, mail.template) == ("alice@new.example", "email_change")
    token = re.search(r"http://idp\.test/verify-email\?token=([A-Za-z0-9_-]+)", mail.text)
    assert token is not None
    assert token[0] in mail.html
    row = await pool.fetchrow("SELECT token_hash, purpose, user_id, email FROM mail_tokens")
    assert row is not None
    assert row["token_hash"] == digest(token[1]), "the link carries the token stored"
    assert (row["purpose"], row["user_id"], row["email"]) == ("change_email", user.id, mail.to)
    assert await pool.fetchval("SELECT email FROM users") == EMAIL
    assert "We sent a link to the new address." in (await browser.get("/account?done=email")).text
    assert (f"user:{user.id}", "account.email_change_requested") in await actions(pool, "acc")


async def test_an_address_with_an_account_gets_a_notice_and_the_page_says_the_same(
    site: Site, pool: asyncpg.Pool
) -> None:
    await make_user(pool, EMAIL)
    await make_user(pool, "bob@example.com", name="Bob")
    browser = await signed_in(site)
    free = await submit(browser, "/account/email", email="carol@example.com", password=PASSWORD)
    taken = await submit(browser, "/account/email", email="BOB@example.com", password=PASSWORD)
    assert (taken.status_code, taken.headers["location"]) == (
        free.status_code,
        free.headers["location"],
    )
    assert taken.text == free.text
    mails = await queued(site)
    assert [(m.to, m.template) for m in mails] == [
        ("carol@example.com", "email_change"),
        ("BOB@example.com", "email_change_taken"),
    ]
    assert "token=" not in mails[1].text
    assert "Bob" in mails[1].text
    live = await pool.fetch("SELECT email FROM mail_tokens WHERE used_at IS NULL")
    assert [row["email"] for row in live] == [], "the second request voided the first link"
    assert await pool.fetchval("SELECT count(*) FROM mail_tokens") == 1


@pytest.mark.parametrize(
    ("address", "says"),
    [("not an address", "Enter an email address"), (EMAIL.upper(), "already your email")],
)
async def test_an_unusable_new_address_is_refused(
    site: Site, pool: asyncpg.Pool, address: str, says: str
) -> None:
    await make_user(pool, EMAIL)
    browser = await signed_in(site)
    refused = await submit(browser, "/account/email", email=address, password=PASSWORD)
    assert refused.status_code == 400
    assert says in refused.text
    assert await queued(site) == []


# -- profile --------------------------------------------------------------------------------------
async def test_the_name_changes_within_bounds(site: Site, pool: asyncpg.Pool) -> None:
    user = await make_user(pool, EMAIL)
    browser = await signed_in(site)
    done(await submit(browser, "/account/profile", name="  Alice   Pleasance "), "name")
    assert await pool.fetchval("SELECT name FROM users") == "Alice Pleasance"
    assert "Your name was saved." in (await browser.get("/account?done=name")).text
    too_long = await submit(browser, "/account/profile", name="A" * 101)
    assert too_long.status_code == 400
    assert NAME_TOO_LONG in too_long.text
    control = await submit(browser, "/account/profile", name="Alice\u202eecilA")
    assert control.status_code == 400
    assert await pool.fetchval("SELECT name FROM users") == "Alice Pleasance"
    assert await actions(pool, "account.") == [(f"user:{user.id}", "account.name_changed")]


# -- CSRF and GET ---------------------------------------------------------------------------------
FORMS = [
    ("/account/profile", {"name": "Mallory"}),
    ("/account/email", {"email": "mallory@example.com", "password": PASSWORD}),
    ("/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                           "confirm_password": NEW_PASSWORD}),
    ("/account/sessions/end-others", {}),
    ("/account/sessions/end", {"sid": "{sid}"}),
    ("/account/apps/revoke", {"client_id": "{client_id}"}),
]  # fmt: skip
STATE = """
SELECT (SELECT json_agg(json_build_array(name, email, password_hash)) FROM users)::text
    || (SELECT json_agg(json_build_array(sid, ended_at)) FROM sessions)::text
    || (SELECT count(*) FROM consents)::text || (SELECT count(*) FROM mail_outbox)::text
    || (SELECT count(*) FROM refresh_families WHERE revoked_at IS NULL)::text
"""


async def other_session_and_consent(
    site: Site, pool: asyncpg.Pool, settings: Settings
) -> tuple[httpx.AsyncClient, dict[str, str]]:
    """Alice signed in twice, with a consented app: something for every form to change."""
    await make_user(pool, EMAIL)
    client_id, secret = await other_app(pool, settings)
    browser = await signed_in(site)
    await signed_in(site, PHONE_IP, SAFARI)
    await tokens_for(browser, client_id, secret, consent=True)
    [sid] = _SID.findall(await page(browser))
    return browser, {"sid": sid, "client_id": client_id}


@pytest.mark.parametrize(("path", "fields"), FORMS)
@pytest.mark.parametrize("csrf", [None, "0" * 64, "other-session"])
async def test_a_post_without_this_sessions_csrf_token_changes_nothing(
    site: Site, pool: asyncpg.Pool, settings: Settings, path: str, fields: dict[str, str],
    csrf: str | None,
) -> None:  # fmt: skip
    browser, values = await other_session_and_consent(site, pool, settings)
    if csrf == "other-session":  # a real token, of the other browser's session
        csrf = site.state["cookies"].csrf_token("account", "another-session-cookie")
    data = {"pad": ""} | {name: value.format(**values) for name, value in fields.items()}
    before = await pool.fetchval(STATE)
    answer = await browser.post(path, data=data | ({"csrf_token": csrf} if csrf else {}))
    assert answer.status_code == 400
    assert "This form has expired" in answer.text
    assert_security_headers(answer)
    assert await pool.fetchval(STATE) == before


@pytest.mark.parametrize(("path", "fields"), FORMS)
async def test_a_get_of_a_form_path_changes_nothing(
    site: Site, pool: asyncpg.Pool, settings: Settings, path: str, fields: dict[str, str]
) -> None:
    browser, values = await other_session_and_consent(site, pool, settings)
    csrf = hidden_fields(await page(browser))["csrf_token"]
    params = {name: value.format(**values) for name, value in fields.items()}
    before = await pool.fetchval(STATE)
    answer = await browser.get(path, params={**params, "csrf_token": csrf})
    assert answer.status_code == 405
    assert (await browser.get("/account", params={"done": "others"})).status_code == 200
    assert await pool.fetchval(STATE) == before
