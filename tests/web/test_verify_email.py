"""``/verify-email`` and ``/verify-email/resend``: a mail link's token works once, for its own
page, for a day; a GET only shows its form; an unverified account's right password gets "check
your mail" (and only the right password learns it); a confirmed email change moves the address,
voids the old links and tells the old address."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import httpx
import pytest

from idp.accounts import mail_tokens, verification
from idp.clock import FrozenClock
from idp.db import users
from idp.mail.message import Mail
from idp.settings import Settings
from idp.web.login import GENERIC_ERROR
from idp.web.state import AppState
from idp.web.verify_email import resend_purpose
from tests.conftest import Instance, InstanceFactory
from tests.factories import PASSWORD, assert_security_headers, make_client, make_user, queued_mail
from tests.oauth.flow import REDIRECT, Authorization, authorize_code, hidden_fields, query_of
from tests.web.malformed import FORM, JSON, Case, Context, Endpoint, Page, forget_cookies, run

EMAIL = "carol@example.com"
NEW_PASSWORD = "violet staple orbit lantern"
LINK_REFUSED = "This link cannot be used"
CHECK_MAIL = "Check your mail"


async def own_app(pool: asyncpg.Pool, settings: Settings) -> str:
    client, _ = await make_client(
        pool,
        settings,
        name="Own App",
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "profile", "email"),
        first_party=True,
    )
    return client.client_id


async def sign_up(http: httpx.AsyncClient, email: str = EMAIL, path: str = "/signup") -> None:
    page = await http.get(path)
    fields = {**hidden_fields(page.text), "email": email, "name": "Carol", "password": NEW_PASSWORD}
    answer = await http.post("/signup", data=fields)
    assert answer.status_code == 200, answer.text


def link_in(mail: Mail) -> str:
    found = re.search(r"http://idp\.test(/verify-email\?token=[A-Za-z0-9_-]+)", mail.text)
    assert found is not None, mail.text
    return found[1]


async def last_link(app: Instance) -> str:
    return link_in((await queued_mail(app.state["pool"], app.state["mailing"].outbox))[-1])


async def sign_in_attempt(
    http: httpx.AsyncClient, client_id: str, email: str, password: str
) -> httpx.Response:
    start = await http.get(Authorization(client_id, REDIRECT).url())
    page = await http.get(start.headers["location"])
    fields = {**hidden_fields(page.text), "email": email, "password": password}
    return await http.post("/login", data=fields)


async def verified(pool: asyncpg.Pool, email: str = EMAIL) -> bool:
    user = await users.by_email(pool, email)
    assert user is not None
    return user.email_verified and not user.must_verify_email


# -- a link works once, in time, for its own page -----------------------------------------------
async def test_a_verification_link_works_once(app_instance: InstanceFactory) -> None:
    async with app_instance(registration="open") as app:
        await sign_up(app.client)
        link = await last_link(app)
        form = hidden_fields((await app.client.get(link)).text)
        first = await app.client.post("/verify-email", data=form)
        again = await app.client.post("/verify-email", data=form)
        shown_again = await app.client.get(link)
        assert await verified(app.state["pool"])
    assert first.status_code == 200, first.text
    for refused in (again, shown_again):
        assert refused.status_code == 400
        assert LINK_REFUSED in refused.text
        assert_security_headers(refused)


async def test_a_verification_link_expires_after_a_day(
    app_instance: InstanceFactory, clock: FrozenClock
) -> None:
    async with app_instance(registration="open") as app:
        await sign_up(app.client)
        link = await last_link(app)
        form = hidden_fields((await app.client.get(link)).text)
        clock.advance(timedelta(hours=24, seconds=1))
        shown = await app.client.get(link)
        posted = await app.client.post("/verify-email", data=form)
        assert not await verified(app.state["pool"])
    assert (shown.status_code, posted.status_code) == (400, 400)
    assert LINK_REFUSED in shown.text
    assert LINK_REFUSED in posted.text


async def test_a_token_for_another_purpose_is_refused_and_keeps_its_own_use(
    app_instance: InstanceFactory, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    async with app_instance(registration="open") as app:
        await sign_up(app.client)
        user = await users.by_email(pool, EMAIL)
        assert user is not None
        reset = await mail_tokens.issue(pool, "reset_password", user.id, EMAIL, clock.now())
        form = hidden_fields((await app.client.get(await last_link(app))).text)
        shown = await app.client.get(f"/verify-email?token={reset}")
        posted = await app.client.post("/verify-email", data={**form, "token": reset})
    assert (shown.status_code, posted.status_code) == (400, 400)
    assert LINK_REFUSED in shown.text
    assert LINK_REFUSED in posted.text
    assert not await verified(pool)
    assert await mail_tokens.peek(pool, reset, "reset_password", clock.now()) is not None


async def test_a_link_is_looked_up_once_whichever_of_the_two_purposes_it_has(
    app_instance: InstanceFactory, pool: asyncpg.Pool, migrated: str, clock: FrozenClock
) -> None:
    """One statement finds a verification link and an email change's alike (the row says which):
    the page's queries, and so their time, do not tell one kind of link from the other."""
    alice = await make_user(pool, "alice@example.com")
    bob = await make_user(pool, "bob@example.com")
    verify = await mail_tokens.issue(pool, "verify_email", alice.id, alice.email, clock.now())
    change = await mail_tokens.issue(
        pool, "change_email", bob.id, "bob.new@example.com", clock.now()
    )
    statements: list[str] = []

    def log(query: asyncpg.connection.LoggedQuery) -> None:
        if "mail_tokens" in query.query and "token_hash = $1" in query.query:
            statements.append(query.query.split()[0])

    async def logging(connection: asyncpg.Connection) -> None:
        connection.add_query_logger(log)

    counted = await asyncpg.create_pool(migrated, min_size=1, max_size=1, init=logging)
    seen: dict[str, list[str]] = {}
    async with app_instance() as app, counted:
        mailing = app.state["mailing"]
        for kind, token in (("verify", verify), ("change", change)):
            statements.clear()
            assert await verification.peek(counted, token, clock.now()) is not None
            done = await verification.confirm(
                counted, mailing, token, "192.0.2.1", "http://idp.test", clock.now()
            )
            seen[kind] = list(statements)
            assert done.purpose == {"verify": "verify_email", "change": "change_email"}[kind]
    assert seen == {"verify": ["SELECT", "UPDATE"], "change": ["SELECT", "UPDATE"]}
    assert await verified(pool, "alice@example.com")
    assert await users.by_email(pool, "bob.new@example.com") is not None


# -- unverified sign-in -------------------------------------------------------------------------
async def test_the_right_password_of_an_unverified_account_gets_check_your_mail(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id = await own_app(pool, settings)
    async with app_instance(registration="open") as app:
        await sign_up(app.client)
        answer = await sign_in_attempt(app.client, client_id, EMAIL, NEW_PASSWORD)
        session_cookie = app.state["cookies"].session
    assert answer.status_code == 403, answer.text
    assert CHECK_MAIL in answer.text
    assert "location" not in answer.headers, "no code"
    assert session_cookie not in answer.headers.get("set-cookie", "")
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 0
    assert await pool.fetchval("SELECT count(*) FROM authorization_codes") == 0
    fields = hidden_fields(answer.text)
    assert fields["email"] == EMAIL
    assert "request" in fields
    action = "SELECT action FROM audit_log WHERE action LIKE 'login.%'"
    assert await pool.fetchval(action) == "login.unverified"


async def test_a_wrong_password_of_an_unverified_account_reveals_nothing(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id = await own_app(pool, settings)
    async with app_instance(registration="open") as app:
        await sign_up(app.client)
        unverified = await sign_in_attempt(app.client, client_id, EMAIL, "wrong " + NEW_PASSWORD)
        nobody = await sign_in_attempt(app.client, client_id, "dave@example.com", "wrong")
    assert unverified.status_code == nobody.status_code == 401
    assert GENERIC_ERROR in unverified.text
    assert CHECK_MAIL not in unverified.text

    def neutral(page: str) -> str:
        page = page.replace(EMAIL, "EMAIL").replace("dave@example.com", "EMAIL")
        # Each page's own passkey challenge, as options and as its signed value.
        page = re.sub(r'(id="passkey-options">)[^<]*', r"\1OPTIONS", page)
        page = re.sub(r'(name="challenge" value=")[^"]*', r"\1CHALLENGE", page)
        return re.sub(r"[A-Za-z0-9_-]{43}", "REQUEST", page)  # each attempt's own request

    assert neutral(unverified.text) == neutral(nobody.text)


async def test_resend_queues_a_new_mail_that_still_leads_back_to_the_app(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id = await own_app(pool, settings)
    async with app_instance(registration="open") as app:
        await sign_up(app.client)
        check = await sign_in_attempt(app.client, client_id, EMAIL, NEW_PASSWORD)
        resent = await app.client.post("/verify-email/resend", data=hidden_fields(check.text))
        mails = await queued_mail(pool, app.state["mailing"].outbox)
        form = hidden_fields((await app.client.get(link_in(mails[-1]))).text)
        done = await app.client.post("/verify-email", data=form)
        back = await app.client.get(done.headers["location"])
        fields = {**hidden_fields(back.text), "email": EMAIL, "password": NEW_PASSWORD}
        answer = await app.client.post("/login", data=fields)
    assert resent.status_code == 200, resent.text
    assert "We sent a new mail" in resent.text
    assert [(m.to, m.template) for m in mails] == [(EMAIL, "verify_email")] * 2
    assert link_in(mails[0]) != link_in(mails[1])
    assert done.status_code == 303
    assert answer.status_code == 303, answer.text
    assert "code" in query_of(answer.headers["location"])


async def test_resend_is_rate_limited(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id = await own_app(pool, settings)
    async with app_instance(registration="open") as app:
        await sign_up(app.client)
        check = await sign_in_attempt(app.client, client_id, EMAIL, NEW_PASSWORD)
        form = hidden_fields(check.text)
        statuses = [
            (await app.client.post("/verify-email/resend", data=form)).status_code
            for _ in range(verification.RESEND_PER_EMAIL.hits + 1)
        ]
        mails = await queued_mail(pool, app.state["mailing"].outbox)
    assert statuses == [200] * verification.RESEND_PER_EMAIL.hits + [429]
    assert len(mails) == 1 + verification.RESEND_PER_EMAIL.hits


async def test_resend_answers_the_same_whether_or_not_it_sent(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    """An operator-added (or already verified) account gets no mail, and the same page."""
    await make_user(pool, "alice@example.com")
    async with app_instance(registration="open") as app:
        await sign_up(app.client)
        await app.client.get("/signup")  # the pre-login cookie
        cookies = app.state["cookies"]
        binding = app.client.cookies[cookies.login]
        answers = {}
        for email in (EMAIL, "alice@example.com"):
            token = cookies.csrf_token(resend_purpose(email), binding)
            data = {"csrf_token": token, "email": email}
            answers[email] = await app.client.post("/verify-email/resend", data=data)
        mails = await queued_mail(pool, app.state["mailing"].outbox)
    sent, not_sent = answers[EMAIL], answers["alice@example.com"]
    assert sent.status_code == not_sent.status_code == 200

    def neutral(page: str) -> str:
        page = page.replace(EMAIL, "EMAIL").replace("alice@example.com", "EMAIL")
        return re.sub(r'name="csrf_token" value="[0-9a-f]{64}"', "", page)

    assert neutral(sent.text) == neutral(not_sent.text)
    assert [m.to for m in mails] == [EMAIL, EMAIL]


async def test_resend_for_an_address_the_page_was_not_made_for_is_refused(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id = await own_app(pool, settings)
    async with app_instance(registration="open") as app:
        await sign_up(app.client)
        await sign_up(app.client, "dave@example.com")
        check = await sign_in_attempt(app.client, client_id, EMAIL, NEW_PASSWORD)
        form = {**hidden_fields(check.text), "email": "dave@example.com"}
        answer = await app.client.post("/verify-email/resend", data=form)
        mails = await queued_mail(pool, app.state["mailing"].outbox)
    assert answer.status_code == 400
    assert len(mails) == 2, "only the two sign-ups' mails"


async def test_users_an_operator_added_sign_in_as_before(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id = await own_app(pool, settings)
    await make_user(pool, "alice@example.com")
    async with app_instance() as app:
        await authorize_code(
            app.client, Authorization(client_id, REDIRECT), "alice@example.com", PASSWORD
        )


# -- confirming an email change -----------------------------------------------------------------
async def test_confirming_an_email_change_moves_the_address_and_voids_old_links(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    client_id = await own_app(pool, settings)
    alice = await make_user(pool, "alice@example.com")
    new = "alice.new@example.com"
    change = await mail_tokens.issue(pool, "change_email", alice.id, new, clock.now())
    reset = await mail_tokens.issue(pool, "reset_password", alice.id, alice.email, clock.now())
    async with app_instance() as app:
        shown = await app.client.get(f"/verify-email?token={change}")
        done = await app.client.post("/verify-email", data=hidden_fields(shown.text))
        mails = await queued_mail(pool, app.state["mailing"].outbox)
        await authorize_code(app.client, Authorization(client_id, REDIRECT), new, PASSWORD)
    assert shown.status_code == 200
    assert "Confirm your new address" in shown.text
    assert new in shown.text
    assert done.status_code == 200, done.text
    assert "Your address is changed" in done.text
    moved = await users.by_id(pool, alice.id)
    assert moved is not None
    assert (moved.email, moved.email_verified) == (new, True)
    assert [(m.to, m.template) for m in mails] == [("alice@example.com", "email_changed")]
    assert new in mails[0].text
    assert await mail_tokens.peek(pool, reset, "reset_password", clock.now()) is None
    row = await pool.fetchrow(
        "SELECT subject, details FROM audit_log WHERE action = 'email.changed'"
    )
    assert row is not None
    assert row["subject"] == str(alice.id)


async def test_an_email_change_to_an_address_taken_meanwhile_is_refused_readably(
    app_instance: InstanceFactory, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    alice = await make_user(pool, "alice@example.com")
    change = await mail_tokens.issue(pool, "change_email", alice.id, "bob@example.com", clock.now())
    await make_user(pool, "Bob@example.com", name="Bob")
    async with app_instance() as app:
        shown = await app.client.get(f"/verify-email?token={change}")
        done = await app.client.post("/verify-email", data=hidden_fields(shown.text))
        mails = await queued_mail(pool, app.state["mailing"].outbox)
    assert done.status_code == 409
    assert "This address is taken" in done.text
    assert_security_headers(done)
    assert await users.by_id(pool, alice.id) == alice
    assert mails == []


# -- hostile input ------------------------------------------------------------------------------
@dataclass
class Mailbox(Context):
    state: AppState
    client_id: str

    async def verify_form(self) -> dict[str, str]:
        await sign_up(self.http)
        mails = await queued_mail(self.state["pool"], self.state["mailing"].outbox)
        page = await self.http.get(link_in(mails[-1]))
        assert page.status_code == 200, page.text
        return hidden_fields(page.text)

    async def resend_form(self) -> dict[str, str]:
        await sign_up(self.http)
        page = await sign_in_attempt(self.http, self.client_id, EMAIL, NEW_PASSWORD)
        assert page.status_code == 403, page.text
        return hidden_fields(page.text)


async def verify_form(ctx: Mailbox) -> dict[str, str]:
    return await ctx.verify_form()


async def resend_form(ctx: Mailbox) -> dict[str, str]:
    return await ctx.resend_form()


VERIFY_PAGE = Endpoint[Mailbox]("GET", "/verify-email")
VERIFY = Endpoint[Mailbox]("POST", "/verify-email", {}, None, FORM, verify_form)
RESEND = Endpoint[Mailbox]("POST", "/verify-email/resend", {}, None, FORM, resend_form)
REFUSED = Page(400)
VERIFIED = Page(200, ("Your address is verified",))
RESENT = Page(200, ("We sent a new mail",))

# fmt: off
CASES = [
    VERIFY_PAGE("get-no-token", Page(400, (LINK_REFUSED,))),
    VERIFY_PAGE("get-empty-token", Page(400, (LINK_REFUSED,)), token=""),
    VERIFY_PAGE("get-garbage-token", Page(400, (LINK_REFUSED,)), token="garbage-garbage-garbage"),
    VERIFY_PAGE("get-token-invalid-utf8", REFUSED, raw=b"token=%ff%c3%28"),
    VERIFY_PAGE("get-token-nul", REFUSED, raw=b"token=%00"),
    VERIFY_PAGE("get-token-10kb", REFUSED, token="t" * 10_240),
    VERIFY_PAGE("get-duplicated-token", REFUSED, token=["a" * 43, "b" * 43]),
    VERIFY("post-valid", VERIFIED),
    VERIFY("post-no-csrf-token", REFUSED, csrf_token=None),
    VERIFY("post-forged-csrf-token", REFUSED, csrf_token="0" * 64),
    VERIFY("post-non-ascii-csrf-token", REFUSED, csrf_token="\u00e9" * 64),
    VERIFY("post-csrf-token-without-cookie", REFUSED, steps=[forget_cookies]),
    VERIFY("post-json", REFUSED, as_json=True, content_type=JSON),
    VERIFY("post-no-content-type", REFUSED, content_type=None),
    VERIFY("post-invalid-utf8-escape", REFUSED, raw=b"x=%ff%fe"),
    VERIFY("post-invalid-utf8-raw", REFUSED, raw=b"x=\xc3\x28"),
    VERIFY("post-duplicated-token", REFUSED, raw=b"token=other"),
    VERIFY("post-20kb", REFUSED, raw=b"pad=" + b"a" * 20_480),
    VERIFY("post-no-token", Page(400, (LINK_REFUSED,)), token=None),
    VERIFY("post-garbage-token", Page(400, (LINK_REFUSED,)), token="garbage"),
    VERIFY("post-token-nul", REFUSED, token="a\x00b"),
    VERIFY("post-token-10kb", REFUSED, token="t" * 10_240),
    RESEND("resend-valid", RESENT),
    RESEND("resend-no-csrf-token", REFUSED, csrf_token=None),
    RESEND("resend-forged-csrf-token", REFUSED, csrf_token="0" * 64),
    RESEND("resend-non-ascii-csrf-token", REFUSED, csrf_token="\u00e9" * 64),
    RESEND("resend-csrf-token-without-cookie", REFUSED, steps=[forget_cookies]),
    RESEND("resend-other-address", REFUSED, email="dave@example.com"),
    RESEND("resend-no-email", REFUSED, email=None),
    RESEND("resend-email-nul", REFUSED, email=EMAIL + "\x00"),
    RESEND("resend-email-10kb", REFUSED, email="a" * 10_240),
    RESEND("resend-json", REFUSED, as_json=True, content_type=JSON),
    RESEND("resend-no-content-type", REFUSED, content_type=None),
    RESEND("resend-invalid-utf8", REFUSED, raw=b"x=%c3%28"),
    RESEND("resend-duplicated-email", REFUSED, raw=b"email=dave%40example.com"),
    RESEND("resend-20kb", REFUSED, raw=b"pad=" + b"a" * 20_480),
    RESEND("resend-garbage-request", RESENT, request="garbage"),
    RESEND("resend-request-nul", RESENT, request="r\x00"),
    RESEND("resend-no-request", RESENT, request=None),
]
# fmt: on


@pytest.mark.parametrize("case", CASES)
async def test_hostile_input_to_verify_email_and_resend_is_refused_without_crashing(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    case: Case[Mailbox],
) -> None:
    client_id = await own_app(pool, settings)
    async with app_instance(registration="open") as app:
        await run(Mailbox(app.client, clock, app.state, client_id), case)
