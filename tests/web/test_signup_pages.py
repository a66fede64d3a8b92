"""``/signup`` and the detour through the mailbox: a person signs up from a relying app's sign-in
page, verifies their address from the mail, and lands back in the app's flow with a code. The
page answers the same for known and unknown addresses; with registration closed it does not
exist and nothing links to it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from markupsafe import escape

from idp.accounts import password_policy
from idp.clock import FrozenClock
from idp.db import users
from idp.mail.message import Mail
from idp.settings import Settings
from idp.web.state import AppState
from tests.conftest import InstanceFactory
from tests.factories import assert_security_headers, make_client, make_user, queued_mail, verify
from tests.oauth.flow import REDIRECT, Authorization, exchange_code, hidden_fields, query_of
from tests.web.malformed import FORM, JSON, Case, Context, Endpoint, Page, forget_cookies, run

EMAIL = "carol@example.com"
PASSWORD = "violet staple orbit lantern"
CHECK_MAIL = "Check your mail"
_CSRF = re.compile(r'name="csrf_token" value="[0-9a-f]{64}"')


async def own_app(pool: asyncpg.Pool, settings: Settings) -> tuple[str, str]:
    """A first-party client (no consent step): its id and secret."""
    client, secret = await make_client(
        pool,
        settings,
        name="Own App",
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "profile", "email"),
        first_party=True,
    )
    return client.client_id, secret


async def login_page(http: httpx.AsyncClient, auth: Authorization) -> httpx.Response:
    start = await http.get(auth.url())
    assert start.headers["location"].startswith("/login?"), start.text
    page = await http.get(start.headers["location"])
    assert page.status_code == 200, page.text
    return page


def href(page: str, path: str) -> str | None:
    found = re.search(rf'href="({re.escape(path)}[^"]*)"', page)
    return None if found is None else found[1]


async def post_signup(
    http: httpx.AsyncClient, signup_path: str = "/signup", **fields: str
) -> httpx.Response:
    page = await http.get(signup_path)
    assert page.status_code == 200, page.text
    form = {"email": EMAIL, "name": "Carol", "password": PASSWORD, **fields}
    return await http.post("/signup", data={**hidden_fields(page.text), **form})


def link_in(mail: Mail, path: str) -> str:
    """The link to ``path`` the mail carries, as a path (the app is driven over ASGI)."""
    found = re.search(rf"http://idp\.test({re.escape(path)}\?token=[A-Za-z0-9_-]+)", mail.text)
    assert found is not None, mail.text
    return found[1]


async def test_sign_up_verify_then_sign_in_ends_with_a_code_at_the_client(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, secret = await own_app(pool, settings)
    auth = Authorization(client_id, REDIRECT)
    async with app_instance(registration="open") as app:
        http = app.client
        login = await login_page(http, auth)
        signup_path = href(login.text, "/signup")
        assert signup_path == f"/signup?request={hidden_fields(login.text)['request']}"

        signed_up = await post_signup(http, signup_path)
        assert signed_up.status_code == 200, signed_up.text
        assert CHECK_MAIL in signed_up.text
        [mail] = await queued_mail(pool, app.state["mailing"].outbox)
        assert (mail.to, mail.template) == (EMAIL, "verify_email")

        shown = await http.get(link_in(mail, "/verify-email"))
        assert shown.status_code == 200, shown.text
        assert_security_headers(shown)
        user = await users.by_email(pool, EMAIL)
        assert user is not None
        assert (user.email_verified, user.must_verify_email) == (False, True), "a GET only looks"
        assert await pool.fetchval("SELECT used_at FROM mail_tokens") is None

        verified = await http.post("/verify-email", data=hidden_fields(shown.text))
        assert verified.status_code == 303, verified.text
        location = verified.headers["location"]
        assert location.startswith("/login?"), location
        assert query_of(location)["request"] != hidden_fields(login.text)["request"]
        back = await http.get(location)
        assert "Your address is verified. Sign in to continue." in back.text
        assert f'value="{EMAIL}"' in back.text

        fields = {**hidden_fields(back.text), "email": EMAIL, "password": PASSWORD}
        answer = await http.post("/login", data=fields)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"].startswith(REDIRECT)
        code = query_of(answer.headers["location"])
        assert code["state"] == auth.state
        tokens = await exchange_code(http, client_id, secret, code["code"], auth)
        assert tokens.status_code == 200, tokens.text
        jwks = await http.get("/jwks.json")
        claims = verify(tokens.json()["id_token"], jwks.content, ["RS256"])
    assert (claims["email"], claims["email_verified"]) == (EMAIL, True)
    verified_user = await users.by_email(pool, EMAIL)
    assert verified_user is not None
    assert (verified_user.email_verified, verified_user.must_verify_email) == (True, False)
    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE action NOT LIKE 'key.%' ORDER BY id"
    )
    assert [row["action"] for row in actions] == [
        "signup.created",
        "email.verified",
        "login.succeeded",
    ]


async def test_without_an_authorization_request_the_verified_page_says_to_sign_in(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    async with app_instance(registration="open") as app:
        assert (await post_signup(app.client)).status_code == 200
        [mail] = await queued_mail(pool, app.state["mailing"].outbox)
        shown = await app.client.get(link_in(mail, "/verify-email"))
        verified = await app.client.post("/verify-email", data=hidden_fields(shown.text))
    assert verified.status_code == 200, verified.text
    assert "Your address is verified" in verified.text
    assert "You can now sign in" in verified.text
    assert_security_headers(verified)


def without_csrf(page: str) -> str:
    return _CSRF.sub('name="csrf_token" value="..."', page)


async def test_known_and_unknown_addresses_get_byte_identical_pages_and_the_owner_a_mail(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    await make_user(pool, "alice@example.com")
    client_id, _ = await own_app(pool, settings)
    answers: list[httpx.Response] = []
    async with app_instance(registration="open") as app:
        for email in ("alice@example.com", "bobby@example.com"):
            login = await login_page(app.client, Authorization(client_id, REDIRECT))
            signup_path = href(login.text, "/signup")
            assert signup_path is not None
            answers.append(await post_signup(app.client, signup_path, email=email))
        mails = await queued_mail(pool, app.state["mailing"].outbox)
    known, unknown = answers
    assert known.status_code == unknown.status_code == 200
    assert without_csrf(known.text) == without_csrf(unknown.text)
    assert known.headers.get_list("set-cookie") == unknown.headers.get_list("set-cookie") == []
    assert [(m.to, m.template) for m in mails] == [
        ("alice@example.com", "signup_existing"),
        ("bobby@example.com", "verify_email"),
    ]
    assert "http://idp.test/forgot-password" in mails[0].text


async def test_with_registration_closed_signup_is_a_404_and_nothing_links_to_it(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, _ = await own_app(pool, settings)
    browser = {"accept": "text/html"}
    async with app_instance() as app:
        login = await login_page(app.client, Authorization(client_id, REDIRECT))
        shown = await app.client.get("/signup", headers=browser)
        posted = await app.client.post("/signup", data={"email": EMAIL}, headers=browser)
        nowhere = await app.client.get("/no-such-page", headers=browser)
    assert "/signup" not in login.text
    assert "Create an account" not in login.text
    request_id = hidden_fields(login.text)["request"]
    assert href(login.text, "/forgot-password") == f"/forgot-password?request={request_id}"
    assert shown.status_code == posted.status_code == 404
    assert shown.text == posted.text == nowhere.text
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_with_registration_open_the_login_page_links_to_signup_with_its_request(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, _ = await own_app(pool, settings)
    async with app_instance(registration="open") as app:
        login = await login_page(app.client, Authorization(client_id, REDIRECT))
        request_id = hidden_fields(login.text)["request"]
        signup = await app.client.get(f"/signup?request={request_id}")
    assert href(login.text, "/signup") == f"/signup?request={request_id}"
    assert href(login.text, "/forgot-password") == f"/forgot-password?request={request_id}"
    assert signup.status_code == 200
    assert hidden_fields(signup.text)["request"] == request_id
    assert "Own App" in signup.text
    assert_security_headers(signup)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short one", password_policy.TOO_SHORT.format(minimum=12)),
        ("password1234", password_policy.TOO_COMMON),
        ("I am carol, hello", password_policy.HAS_EMAIL),
    ],
    ids=["too-short", "common", "contains-local-part"],
)
async def test_the_form_says_which_password_rule_failed(
    password: str, message: str, app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    async with app_instance(registration="open") as app:
        answer = await post_signup(app.client, password=password)
    assert answer.status_code == 400, answer.text
    assert str(escape(message)) in answer.text
    assert f'value="{EMAIL}"' in answer.text, "what was typed stays (but the password)"
    assert password not in answer.text
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_a_64_character_password_signs_up(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    password = "a quite long passphrase that keeps going on and on and on, 64 ch"
    assert len(password) == 64
    async with app_instance(registration="open") as app:
        answer = await post_signup(app.client, password=password)
    assert answer.status_code == 200, answer.text
    assert await users.by_email(pool, EMAIL) is not None


async def test_too_many_sign_ups_for_one_address_are_refused_on_the_form(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    async with app_instance(registration="open") as app:
        statuses = [(await post_signup(app.client)).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert len(await queued_mail(pool, app.state["mailing"].outbox)) == 5


# -- hostile input ------------------------------------------------------------------------------
@dataclass
class SignUp(Context):
    state: AppState


async def signup_form(ctx: SignUp) -> dict[str, str]:
    page = await ctx.http.get("/signup")
    assert page.status_code == 200, page.text
    return hidden_fields(page.text)


SIGNUP_PAGE = Endpoint[SignUp]("GET", "/signup")
SIGNUP = Endpoint[SignUp](
    "POST", "/signup", {"email": EMAIL, "name": "Carol", "password": PASSWORD}, None, FORM,
    signup_form,
)  # fmt: skip
SENT = Page(200, (CHECK_MAIL,))
REFUSED = Page(400)

# fmt: off
CASES = [
    SIGNUP_PAGE("get-garbage-request", Page(200), request="garbage"),
    SIGNUP_PAGE("get-request-invalid-utf8", Page(200), raw=b"request=%ff%c3%28"),
    SIGNUP_PAGE("get-request-nul", Page(200), raw=b"request=%00"),
    SIGNUP_PAGE("get-request-10kb", Page(200), request="r" * 10_240),
    SIGNUP("post-valid", SENT),
    SIGNUP("post-no-csrf-token", REFUSED, csrf_token=None),
    SIGNUP("post-forged-csrf-token", REFUSED, csrf_token="0" * 64),
    SIGNUP("post-non-ascii-csrf-token", REFUSED, csrf_token="\u00e9" * 64),
    SIGNUP("post-csrf-token-without-cookie", REFUSED, steps=[forget_cookies]),
    SIGNUP("post-json", REFUSED, as_json=True, content_type=JSON),
    SIGNUP("post-no-content-type", REFUSED, content_type=None),
    SIGNUP("post-invalid-utf8-escape", REFUSED, raw=b"x=%ff%fe"),
    SIGNUP("post-invalid-utf8-raw", REFUSED, raw=b"x=\xc3\x28"),
    SIGNUP("post-duplicated-email", REFUSED, raw=b"email=mallory%40x.example"),
    SIGNUP("post-duplicated-password", REFUSED, raw=b"password=another"),
    SIGNUP("post-20kb", REFUSED, raw=b"pad=" + b"a" * 20_480),
    SIGNUP("post-no-email", REFUSED, email=None),
    SIGNUP("post-no-password", REFUSED, password=None),
    SIGNUP("post-no-name", SENT, name=None),
    SIGNUP("post-email-10kb", REFUSED, email="a" * 10_240 + "@example.com"),
    SIGNUP("post-email-nul", REFUSED, email="carol\x00@example.com"),
    SIGNUP("post-email-html", REFUSED, email="<script>@example.com"),
    SIGNUP("post-name-nul", REFUSED, name="Carol\x00"),
    SIGNUP("post-name-10kb", REFUSED, name="C" * 10_240),
    SIGNUP("post-password-nul", SENT, password=PASSWORD + "\x00"),
    SIGNUP("post-password-10kb", REFUSED, password="p" * 10_240),
    SIGNUP("post-garbage-request", SENT, request="garbage"),
    SIGNUP("post-request-nul", SENT, request="r\x00"),
]
# fmt: on


@pytest.mark.parametrize("case", CASES)
async def test_hostile_input_to_signup_is_refused_without_crashing(
    app_instance: InstanceFactory, clock: FrozenClock, case: Case[SignUp]
) -> None:
    async with app_instance(registration="open") as app:
        await run(SignUp(app.client, clock, app.state), case)


async def test_hostile_pages_never_echo_markup(app_instance: InstanceFactory) -> None:
    async with app_instance(registration="open") as app:
        answer = await post_signup(app.client, email="<b>x</b>@example.com", name="<i>Carol</i>")
    assert answer.status_code == 400
    assert "<i>Carol</i>" not in answer.text
    assert "&lt;i&gt;Carol&lt;/i&gt;" in answer.text
