"""Issue 15's acceptance, through a real SMTP server: each journey's mail is queued by a page or
the CLI, delivered by the app's own sender (woken by NOTIFY, or by ``passed()``), and read from
the server (tests/smtp.py) as a person reads it; its link is then followed in the browser. And
the outbox keeps a mail the server could not take, and delivers it once the server is back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from idp.clock import FrozenClock
from idp.mail.sender import LEASE, retry_delay
from idp.settings import Settings
from tests.conftest import Instance, InstanceFactory
from tests.factories import PASSWORD, assert_oauth_error, make_client, make_user, verify
from tests.helpers import idp
from tests.oauth.flow import (
    REDIRECT,
    Authorization,
    authorize_code,
    exchange_code,
    hidden_fields,
    query_of,
    refresh,
    sign_in,
)
from tests.smtp import SmtpSink, html_of, link_in, text_of

ALICE = "alice@example.com"
NEW_PASSWORD = "a brand new passphrase"


async def own_app(pool: asyncpg.Pool, settings: Settings) -> tuple[str, str]:
    """A first-party client (no consent step) that may refresh: its id and secret."""
    client, secret = await make_client(
        pool, settings, name="Own App", grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,), scopes=("openid", "profile", "email", "offline_access"),
        first_party=True,
    )  # fmt: skip
    return client.client_id, secret


async def sender_pass(instance: Instance) -> None:
    """A whole pass of the app's sender (a stopped sender fails the test, not hangs it)."""
    async with asyncio.timeout(10):
        await instance.state["mail_sender"].passed()


async def delivered(instance: Instance, sink: SmtpSink, to: str, count: int = 1) -> str:
    """After a sender pass, the ``count``-th mail to ``to`` has arrived: its plain text."""
    await instance.state["background"].drain()  # mail a request queues after answering
    await sender_pass(instance)
    message = await sink.wait_for(to, count)
    assert message["From"] == instance.state["settings"].sender
    return text_of(message)


async def follow_form(http: httpx.AsyncClient, link: str, **fields: str) -> httpx.Response:
    """A mail link's GET shows a form (changing nothing); post it as the page gives it."""
    page = await http.get(link)
    assert page.status_code == 200, page.text
    action = page.text.split('action="', 1)[1].split('"', 1)[0]
    return await http.post(action, data={**hidden_fields(page.text), **fields})


async def ask_for_reset(http: httpx.AsyncClient, email: str) -> httpx.Response:
    page = await http.get("/forgot-password")
    assert page.status_code == 200, page.text
    return await http.post("/forgot-password", data={**hidden_fields(page.text), "email": email})


async def account_sign_in(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    form = await http.get("/account/sign-in")
    assert form.status_code == 200, form.text
    data = {**hidden_fields(form.text), "email": email, "password": password}
    return await http.post("/account/sign-in", data=data)


async def test_a_sign_up_is_verified_by_the_mail_it_gets_and_ends_with_a_code_at_the_app(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, secret = await own_app(pool, settings)
    auth = Authorization(client_id, REDIRECT)
    carol, password = "carol@example.com", "violet staple orbit lantern"
    async with app_instance(smtp_url=smtp_sink.url, registration="open") as instance:
        http = instance.client
        start = await http.get(auth.url())
        login = await http.get(start.headers["location"])
        request_id = hidden_fields(login.text)["request"]
        signup = await http.get(f"/signup?request={request_id}")
        assert signup.status_code == 200, signup.text
        form = {"email": carol, "name": "Carol", "password": password}
        signed_up = await http.post("/signup", data={**hidden_fields(signup.text), **form})
        assert signed_up.status_code == 200, signed_up.text

        message = await smtp_sink.wait_for(carol)  # the sender woken by NOTIFY alone
        assert message["From"] == settings.sender
        assert message["Subject"] == "Verify your email address"
        link = link_in(message, "/verify-email")
        assert f'href="{link}"' in html_of(message)
        verified = await follow_form(http, link)
        assert verified.status_code == 303, verified.text
        back = await http.get(verified.headers["location"])
        assert back.status_code == 200, back.text
        fields = {**hidden_fields(back.text), "email": carol, "password": password}
        answer = await http.post("/login", data=fields)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"].startswith(REDIRECT)
        code = query_of(answer.headers["location"])
        assert code["state"] == auth.state, "not the request started before the sign-up"
        tokens = await exchange_code(http, client_id, secret, code["code"], auth)
        assert tokens.status_code == 200, tokens.text
        jwks = await http.get("/jwks.json")

    claims = verify(tokens.json()["id_token"], jwks.content, ["RS256"])
    assert (claims["email"], claims["email_verified"], claims["nonce"]) == (carol, True, auth.nonce)


async def test_a_reset_by_mail_ends_the_old_password_session_and_refresh_token_and_tells_the_owner(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, pool: asyncpg.Pool, settings: Settings
) -> None:
    client_id, secret = await own_app(pool, settings)
    await make_user(pool, ALICE)
    async with app_instance(smtp_url=smtp_sink.url, registration="open") as instance:
        http = instance.client
        auth = Authorization(client_id, REDIRECT, scope="openid offline_access")
        code = await authorize_code(http, auth, ALICE, PASSWORD)
        old = (await exchange_code(http, client_id, secret, code, auth)).json()
        old_session = http.cookies["idp_session"]
        http.cookies.clear()  # the person is on another device

        assert (await ask_for_reset(http, ALICE)).status_code == 200
        text = await delivered(instance, smtp_sink, ALICE)
        assert smtp_sink.to(ALICE)[0]["Subject"] == "Reset your password"
        link = link_in(smtp_sink.to(ALICE)[0], "/reset-password")
        assert link in text
        done = await follow_form(http, link, password=NEW_PASSWORD)
        assert done.status_code == 200, done.text
        assert "Your password was changed" in done.text

        notice = await delivered(instance, smtp_sink, ALICE, 2)
        assert smtp_sink.to(ALICE)[1]["Subject"] == "Your password was changed"
        assert "password" in notice
        http.cookies.clear()
        start = await http.get(Authorization(client_id, REDIRECT).url())
        assert start.headers["location"].startswith("/login?")
        refused = await sign_in(http, start.headers["location"], ALICE, PASSWORD)
        assert refused.status_code == 401, "the old password still works"
        http.cookies.clear()
        http.cookies.set("idp_session", old_session)
        again = await http.get(Authorization(client_id, REDIRECT).url())
        assert again.headers["location"].startswith("/login?"), "the old session still works"
        assert "refresh_token" in old
        refused_refresh = await refresh(http, (client_id, secret), old["refresh_token"])
        assert_oauth_error(refused_refresh, 400, "invalid_grant")
        http.cookies.clear()
        assert await authorize_code(http, Authorization(client_id, REDIRECT), ALICE, NEW_PASSWORD)


@pytest.mark.usefixtures("real_time")  # the CLI runs on the system clock
async def test_an_invitation_from_the_cli_arrives_and_the_invitee_sets_a_password_and_signs_in(
    app_instance: InstanceFactory,
    smtp_sink: SmtpSink,
    pool: asyncpg.Pool,
    settings: Settings,
    clock: FrozenClock,
    cli_env: dict[str, str],
) -> None:
    client_id, secret = await own_app(pool, settings)
    bob = "bob@example.com"
    # The CLI only queues (sealed with the KEK it shares with the app); the app's sender sends.
    invited = await idp(cli_env | {"IDP_ISSUER": settings.issuer}, "users", "invite", bob)
    assert invited.returncode == 0, invited.stderr
    clock.set(datetime.now(UTC))  # the app starts after the CLI queued: its mail is due
    async with app_instance(smtp_url=smtp_sink.url, registration="open") as instance:
        http = instance.client
        await delivered(instance, smtp_sink, bob)
        [message] = smtp_sink.to(bob)
        assert message["Subject"] == "You are invited to set up your account"
        link = link_in(message, "/accept-invitation")
        assert f'href="{link}"' in html_of(message)
        accepted = await follow_form(http, link, name="Bob", password=NEW_PASSWORD)
        assert accepted.status_code == 200, accepted.text
        auth = Authorization(client_id, REDIRECT)
        code = await authorize_code(http, auth, bob, NEW_PASSWORD)
        tokens = await exchange_code(http, client_id, secret, code, auth)
        assert tokens.status_code == 200, tokens.text


async def test_a_reset_asked_for_while_the_mail_server_is_down_arrives_once_when_it_is_back(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    await make_user(pool, ALICE)
    smtp_sink.stop()
    async with app_instance(smtp_url=smtp_sink.url, registration="open") as instance:
        http = instance.client
        answer = await ask_for_reset(http, ALICE)
        assert answer.status_code == 200, answer.text
        assert "Check your mail" in answer.text
        await instance.state["background"].drain()
        await sender_pass(instance)
        [row] = await pool.fetch(
            "SELECT template, attempts, last_error, next_attempt_at, sent_at FROM mail_outbox"
        )
        assert (row["template"], row["attempts"], row["sent_at"]) == ("reset_password", 1, None)
        assert f"cannot reach 127.0.0.1:{smtp_sink.port}" in row["last_error"]
        assert row["next_attempt_at"] == clock.now() + retry_delay(1)

        smtp_sink.start()
        clock.advance(retry_delay(1) + timedelta(seconds=1))
        await sender_pass(instance)
        message = await smtp_sink.wait_for(ALICE)
        assert message["Subject"] == "Reset your password"
        sent_at = clock.now()
        clock.advance(LEASE + timedelta(seconds=1))  # past the lease: only "sent" keeps it
        await sender_pass(instance)
        assert len(smtp_sink.messages) == 1
        # The late mail's link still works: the retry came well within its lifetime.
        shown = await http.get(link_in(message, "/reset-password"))
        assert shown.status_code == 200, shown.text
    [after] = await pool.fetch("SELECT sent_at, last_error FROM mail_outbox")
    assert (after["sent_at"], after["last_error"]) == (sent_at, None)


async def test_an_email_change_is_confirmed_from_the_new_address_and_the_old_one_is_told(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, pool: asyncpg.Pool
) -> None:
    new = "alice@new.example"
    await make_user(pool, ALICE)
    async with app_instance(smtp_url=smtp_sink.url, registration="open") as instance:
        http = instance.client
        signed_in = await account_sign_in(http, ALICE, PASSWORD)
        assert signed_in.headers.get("location") == "/account", signed_in.text
        page = await http.get("/account")
        form = {"csrf_token": hidden_fields(page.text)["csrf_token"], "email": new}
        asked = await http.post("/account/email", data={**form, "password": PASSWORD})
        assert asked.headers.get("location") == "/account?done=email", asked.text

        await delivered(instance, smtp_sink, new)
        [message] = smtp_sink.to(new)
        assert message["Subject"] == "Confirm your new email address"
        confirmed = await follow_form(http, link_in(message, "/verify-email"))
        assert confirmed.status_code == 200, confirmed.text
        assert "Your address is changed" in confirmed.text

        notice = await delivered(instance, smtp_sink, ALICE)
        assert smtp_sink.to(ALICE)[0]["Subject"] == "Your account's email address was changed"
        assert ALICE in notice
        assert new in notice
        http.cookies.clear()
        assert (await account_sign_in(http, ALICE, PASSWORD)).status_code == 401
        signed_in_again = await account_sign_in(http, new, PASSWORD)
        assert signed_in_again.headers.get("location") == "/account", signed_in_again.text
