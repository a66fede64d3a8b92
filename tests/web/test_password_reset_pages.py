"""``/forgot-password`` and ``/reset-password`` through the app, as a browser without JavaScript
uses them, reading the mail idp queues in its outbox."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta

import asyncpg
import httpx
from argon2 import PasswordHasher

from idp.accounts import mail_tokens, reset
from idp.clock import FrozenClock
from idp.mail.message import Mail
from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.factories import (
    PASSWORD,
    assert_oauth_error,
    assert_security_headers,
    make_user,
    queued_mail,
)
from tests.oauth.flow import (
    REDIRECT,
    App,
    Authorization,
    app_with_refresh,
    authorize_code,
    exchange_code,
    hidden_fields,
    sign_in,
)

NEW_PASSWORD = "a brand new passphrase"
# The deny list reaches this process's memory by NOTIFY, a moment after the reset commits.
NOTIFY_LIMIT = 5.0
_CSRF = re.compile(r'name="csrf_token" value="[0-9a-f]{64}"')


async def mail_after_requests(instance: Instance) -> list[Mail]:
    """The outbox once every request's background work has ended."""
    await instance.state["background"].drain()
    return await queued_mail(instance.state["pool"], instance.state["mailing"].outbox)


def link_path(mail: Mail, path: str) -> str:
    """The path and query of the link to ``path`` in the mail's text (and the same in its
    HTML)."""
    found = re.search(rf"http://idp\.test({path}\?token=[A-Za-z0-9_-]+)", mail.text)
    assert found is not None, mail.text
    assert found[0] in mail.html
    return found[1]


async def ask_for_link(http: httpx.AsyncClient, email: str, query: str = "") -> httpx.Response:
    page = await http.get(f"/forgot-password{query}")
    assert page.status_code == 200, page.text
    return await http.post("/forgot-password", data={**hidden_fields(page.text), "email": email})


async def set_password(http: httpx.AsyncClient, path: str, password: str) -> httpx.Response:
    page = await http.get(path)
    assert page.status_code == 200, page.text
    return await http.post(
        "/reset-password", data={**hidden_fields(page.text), "password": password}
    )


async def reset_link(instance: Instance, email: str = "alice@example.com") -> str:
    answer = await ask_for_link(instance.client, email)
    assert answer.status_code == 200, answer.text
    mails = [mail for mail in await mail_after_requests(instance) if mail.to == email]
    return link_path(mails[-1], "/reset-password")


async def userinfo_refuses(app: App, access_token: str) -> bool:
    deadline = time.monotonic() + NOTIFY_LIMIT
    while (status := await app.userinfo_status(access_token)) != 401:
        assert status == 200, status
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def app_request(app: App) -> Authorization:
    return Authorization(app.client_id, REDIRECT, scope="openid email")


async def asks_for_login(app: App, session_cookie: str) -> bool:
    """Whether /authorize, in a browser holding only ``session_cookie``, asks for a sign-in."""
    app.http.cookies.clear()
    app.http.cookies.set("idp_session", session_cookie)
    start = await app.http.get(app_request(app).url())
    app.http.cookies.clear()
    assert start.status_code == 303, start.text
    return bool(start.headers["location"].startswith("/login?"))


def assert_link_refused(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert "This link no longer works" in response.text
    assert_security_headers(response)


async def test_a_reset_by_mail_ends_every_old_session_and_token_and_the_new_password_works(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        http = instance.client
        app = await app_with_refresh(instance, pool, settings)
        old = await app.sign_in()
        old_session = http.cookies["idp_session"]
        assert not await asks_for_login(app, old_session)
        assert await app.userinfo_status(old["access_token"]) == 200
        await pool.execute(  # the account is locked by someone's guesses
            "INSERT INTO login_failures (key, failures, last_failure_at, locked_until) "
            "VALUES ('email:alice@example.com', 9, $1, $2)",
            instance.state["clock"].now(),
            instance.state["clock"].now() + timedelta(minutes=15),
        )
        http.cookies.clear()  # the person is on another device

        answer = await ask_for_link(http, "alice@example.com")
        assert answer.status_code == 200, answer.text
        [mail] = await mail_after_requests(instance)
        assert (mail.to, mail.template, mail.subject) == (
            "alice@example.com", "reset_password", "Reset your password"
        )  # fmt: skip
        path = link_path(mail, "/reset-password")
        form = await http.get(path)
        assert form.status_code == 200, form.text
        assert_security_headers(form)
        # The GET changed nothing: the token is unused, the session alive.
        assert await pool.fetchval("SELECT count(*) FROM mail_tokens WHERE used_at IS NULL") == 1
        assert await app.userinfo_status(old["access_token"]) == 200
        done = await http.post(
            "/reset-password", data={**hidden_fields(form.text), "password": NEW_PASSWORD}
        )

        assert done.status_code == 200, done.text
        assert "Your password was changed" in done.text
        assert await pool.fetchval("SELECT count(*) FROM login_failures") == 0, "still locked"
        assert await asks_for_login(app, old_session), "the old session still works"
        assert_oauth_error(await app.refresh(old["refresh_token"]), 400, "invalid_grant")
        assert await userinfo_refuses(app, old["access_token"])
        start = await http.get(app_request(app).url())
        refused = await sign_in(http, start.headers["location"], "alice@example.com", PASSWORD)
        assert refused.status_code == 401, "the old password still works"
        http.cookies.clear()  # no device cookie: the account's own counter decides
        auth = app_request(app)
        code = await authorize_code(http, auth, "alice@example.com", NEW_PASSWORD)
        tokens = await exchange_code(http, app.client_id, app.secret, code, auth)
        assert tokens.status_code == 200, tokens.text
        notices = [m for m in await mail_after_requests(instance) if m.template != mail.template]

    assert [(notice.to, notice.template) for notice in notices] == [
        ("alice@example.com", "password_changed")
    ]
    row = await pool.fetchrow(
        "SELECT email_verified, must_verify_email FROM users WHERE email = 'alice@example.com'"
    )
    assert row is not None
    assert (row["email_verified"], row["must_verify_email"]) == (True, False)
    alice = str(await pool.fetchval("SELECT id FROM users"))
    audited = await pool.fetch(
        "SELECT action, subject FROM audit_log WHERE action LIKE 'password.%' ORDER BY id"
    )
    assert [(row["action"], row["subject"]) for row in audited] == [
        ("password.reset_requested", alice),
        ("password.reset_completed", alice),
    ]


def headers_of(response: httpx.Response) -> dict[str, str]:
    """The headers but the request's own id."""
    return {k: v for k, v in response.headers.items() if k != "x-request-id"}


def normalised(page: str) -> str:
    return _CSRF.sub('name="csrf_token" value="-"', page)


async def test_forgot_password_answers_the_same_page_for_an_existing_and_an_unknown_address(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "alice@example.com")
    async with app_instance() as instance:
        known = await ask_for_link(instance.client, "alice@example.com")
        unknown = await ask_for_link(instance.client, "nobody@example.com")
        mails = await mail_after_requests(instance)

    assert known.status_code == unknown.status_code == 200
    assert normalised(known.text) == normalised(unknown.text)
    assert known.content == unknown.content  # the answer has no CSRF token to normalise at all
    assert headers_of(known) == headers_of(unknown)
    assert "Check your mail" in known.text
    assert [(mail.to, mail.template) for mail in mails] == [("alice@example.com", "reset_password")]


async def test_forgot_password_answers_without_waiting_for_the_mail_to_be_queued(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    """The answer cannot take longer for an account: the lookup, the token and the mail happen
    after it. Here the outbox is locked, so queueing the mail blocks; the answer still comes."""
    await make_user(pool, "alice@example.com")
    async with app_instance() as instance, pool.acquire() as blocker:
        page = await instance.client.get("/forgot-password")
        fields = {**hidden_fields(page.text), "email": "alice@example.com"}
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE mail_outbox IN ACCESS EXCLUSIVE MODE")
            async with asyncio.timeout(5):
                answer = await instance.client.post("/forgot-password", data=fields)
            assert answer.status_code == 200, answer.text
            assert await pool.fetchval("SELECT count(*) FROM mail_tokens") == 0
        mails = await mail_after_requests(instance)

    assert [mail.template for mail in mails] == ["reset_password"]


async def test_forgot_password_is_rate_limited_per_address_whether_or_not_it_has_an_account(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "alice@example.com")
    allowed = reset.ADDRESS_LIMIT.hits
    async with app_instance() as instance:
        answers = {
            email: [(await ask_for_link(instance.client, email)) for _ in range(allowed + 1)]
            for email in ("alice@example.com", "NOBODY@example.com")
        }
        other = await ask_for_link(instance.client, "carol@example.com")
        mails = await mail_after_requests(instance)

    for email, responses in answers.items():
        assert [r.status_code for r in responses] == [200] * allowed + [429], email
    known, unknown = answers["alice@example.com"][-1], answers["NOBODY@example.com"][-1]
    assert known.content == unknown.content
    assert "Too many requests" in known.text
    assert "alice" not in known.text
    assert_security_headers(known)
    assert other.status_code == 200  # another address from the same IP is still served
    assert len([mail for mail in mails if mail.to == "alice@example.com"]) == allowed


async def test_forgot_password_is_rate_limited_per_client_ip(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "alice@example.com")
    allowed = reset.IP_LIMIT.hits
    async with app_instance() as instance:
        for n in range(allowed):
            answer = await ask_for_link(instance.client, f"person{n}@example.com")
            assert answer.status_code == 200, (n, answer.text)
        known = await ask_for_link(instance.client, "alice@example.com")
        unknown = await ask_for_link(instance.client, "nobody@example.com")
        mails = await mail_after_requests(instance)

    assert known.status_code == unknown.status_code == 429
    assert known.content == unknown.content
    assert mails == []


async def test_forgot_password_refuses_what_is_not_an_address_and_sends_nothing(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    async with app_instance() as instance:
        answer = await ask_for_link(instance.client, "not an address")
        mails = await mail_after_requests(instance)

    assert answer.status_code == 400
    assert "Enter the email address you sign in with." in answer.text
    assert mails == []
    assert await pool.fetchval("SELECT count(*) FROM rate_limits") == 0


async def test_a_reset_link_works_once(app_instance: InstanceFactory, pool: asyncpg.Pool) -> None:
    await make_user(pool, "alice@example.com")
    async with app_instance() as instance:
        path = await reset_link(instance)
        page = await instance.client.get(path)
        fields = {**hidden_fields(page.text), "password": NEW_PASSWORD}
        first = await instance.client.post("/reset-password", data=fields)
        second = await instance.client.post(
            "/reset-password", data={**fields, "password": "yet another passphrase"}
        )
        looked_again = await instance.client.get(path)

    assert first.status_code == 200, first.text
    assert_link_refused(second)
    assert_link_refused(looked_again)
    assert PasswordHasher().verify(
        await pool.fetchval("SELECT password_hash FROM users"), NEW_PASSWORD
    )


async def test_an_expired_reset_link_is_refused_and_changes_nothing(
    app_instance: InstanceFactory, clock: FrozenClock, pool: asyncpg.Pool
) -> None:
    user = await make_user(pool, "alice@example.com")
    async with app_instance() as instance:
        path = await reset_link(instance)
        page = await instance.client.get(path)
        assert page.status_code == 200
        clock.advance(timedelta(minutes=31))
        looked = await instance.client.get(path)
        posted = await instance.client.post(
            "/reset-password", data={**hidden_fields(page.text), "password": NEW_PASSWORD}
        )

    assert_link_refused(looked)
    assert_link_refused(posted)
    assert await pool.fetchval("SELECT password_hash FROM users") == user.password_hash


async def test_a_token_for_another_purpose_is_refused_at_reset_password(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    user = await make_user(pool, "alice@example.com")
    async with app_instance() as instance:
        now = instance.state["clock"].now()
        token = await mail_tokens.issue(pool, "invitation", user.id, user.email, now)
        looked = await instance.client.get(f"/reset-password?token={token}")
        await instance.client.get("/forgot-password")  # the browser gets a pre-login cookie
        fields = {"csrf_token": _csrf_for(instance, "reset-password"), "token": token}
        posted = await instance.client.post(
            "/reset-password", data={**fields, "password": NEW_PASSWORD}
        )

    assert_link_refused(looked)
    assert_link_refused(posted)
    assert await pool.fetchval("SELECT password_hash FROM users") == user.password_hash
    assert await pool.fetchval("SELECT used_at FROM mail_tokens") is None


def _csrf_for(instance: Instance, purpose: str) -> str:
    """The CSRF token a page of ``purpose`` would carry for this browser's pre-login cookie."""
    cookies = instance.state["cookies"]
    return cookies.csrf_token(purpose, instance.client.cookies[cookies.login])


async def test_a_weak_new_password_gets_one_message_per_rule_and_the_link_still_works(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "alice@example.com")
    async with app_instance() as instance:
        path = await reset_link(instance)
        weak = await set_password(instance.client, path, "alice")
        fine = await set_password(instance.client, path, NEW_PASSWORD)

    assert weak.status_code == 400
    assert "Use at least 12 characters." in weak.text
    assert "must not contain your email address" in weak.text
    assert weak.text.count("<li>") == 2
    assert fine.status_code == 200, fine.text


async def test_a_reset_asked_for_from_the_sign_in_page_leads_back_to_the_apps_sign_in(
    app_instance: InstanceFactory, clock: FrozenClock, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with app_instance() as instance:
        http = instance.client
        app = await app_with_refresh(instance, pool, settings)
        auth = app_request(app)
        start = await http.get(auth.url())
        request_id = start.headers["location"].removeprefix("/login?request=")
        page = await http.get(f"/forgot-password?request={request_id}")
        assert hidden_fields(page.text)["request"] == request_id
        assert f'href="/login?request={request_id}"' in page.text
        answer = await http.post(
            "/forgot-password", data={**hidden_fields(page.text), "email": "alice@example.com"}
        )
        [mail] = await mail_after_requests(instance)
        clock.advance(timedelta(minutes=20))  # the parked request is gone
        done = await set_password(http, link_path(mail, "/reset-password"), NEW_PASSWORD)
        found = re.search(r'href="(/login\?request=[A-Za-z0-9_-]+)"', done.text)
        assert found is not None, done.text
        signed_in = await sign_in(http, found[1], "alice@example.com", NEW_PASSWORD)

    assert f'href="/login?request={request_id}"' in answer.text
    assert signed_in.status_code == 303, signed_in.text
    location = signed_in.headers["location"]
    assert location.startswith(REDIRECT + "?code="), location
    assert f"state={auth.state}" in location
