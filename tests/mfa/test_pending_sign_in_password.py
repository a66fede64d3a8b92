"""The pending second-factor state is bound to the password it followed (idp.mfa.challenge): a
browser that gave the password and then waits at the second factor cannot finish the sign-in
once the password was changed meanwhile (by mail reset, the account page, an operator) or the
user disabled, whichever factor it then gives. Without such a change the same flow finishes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import asyncpg
import httpx
import pyotp
import pytest

from idp.clock import FrozenClock
from idp.settings import Settings
from idp.web.second_factor import EXPIRED
from tests.admin_api import PREFIX, admin_token, bearer
from tests.conftest import InstanceFactory
from tests.factories import PASSWORD, enrol_totp, queued_mail
from tests.oauth.flow import hidden_fields
from tests.passkey_pages import (
    SECOND_FACTOR_PASSKEY,
    authenticator,
    enrol_passkey,
    form_of,
    traces,
)
from tests.signin_flow import EMAIL, REDIRECT, SECOND_FACTOR, SECRET, Setup, password_login, running

NEW_PASSWORD = "an entirely new passphrase"
Change = Callable[[Setup, asyncpg.Pool, Settings, FrozenClock], Awaitable[None]]


@pytest.fixture
async def setup(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    kek: bytes,
    clock: FrozenClock,
) -> AsyncIterator[Setup]:
    """Alice, who has an authenticator app, and a first-party app."""
    async with running(app_instance, pool, settings, admin_api=True) as started:
        await enrol_totp(pool, kek, started.user.id, SECRET, clock.now())
        yield started


async def nothing(setup: Setup, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock) -> None:
    del setup, pool, settings, clock


async def operator_sets_password(
    setup: Setup, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    token = await admin_token(setup.http, pool, settings)
    answer = await setup.http.post(
        f"{PREFIX}/users/{setup.user.id}/password",
        json={"password": NEW_PASSWORD},
        headers=bearer(token),
    )
    assert answer.status_code == 200, answer.text


async def operator_disables(
    setup: Setup, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    token = await admin_token(setup.http, pool, settings)
    answer = await setup.http.post(f"{PREFIX}/users/{setup.user.id}/disable", headers=bearer(token))
    assert answer.status_code == 200, answer.text


async def reset_by_mail(
    setup: Setup, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    """/forgot-password, the link of its mail, a new password on /reset-password."""
    http, state = setup.http, setup.app.state
    asked = await http.get("/forgot-password")
    await http.post("/forgot-password", data={**hidden_fields(asked.text), "email": EMAIL})
    await state["background"].drain()
    (mail,) = [m for m in await queued_mail(pool, state["mailing"].outbox) if m.to == EMAIL]
    found = re.search(r"http://idp\.test(/reset-password\?token=[A-Za-z0-9_-]+)", mail.text)
    assert found is not None, mail.text
    form = await http.get(found[1])
    assert form.status_code == 200, form.text
    done = await http.post(
        "/reset-password", data={**hidden_fields(form.text), "password": NEW_PASSWORD}
    )
    assert done.status_code == 200, done.text
    assert "changed" in done.text.lower()


async def account_page_change(
    setup: Setup, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    """Alice herself, on another browser: signed in with her password and this step's code,
    she changes her password on /account."""
    http = setup.http
    form = await http.get("/account/sign-in")
    data = {**hidden_fields(form.text), "email": EMAIL, "password": PASSWORD}
    asked = await http.post("/account/sign-in", data=data)
    assert asked.headers["location"] == SECOND_FACTOR, asked.text
    page = await http.get(SECOND_FACTOR)
    code = pyotp.TOTP(SECRET).at(clock.now())
    signed = await http.post(SECOND_FACTOR, data={**hidden_fields(page.text), "code": code})
    assert signed.headers["location"] == "/account", signed.text
    account = await http.get("/account")
    changed = await http.post(
        "/account/password",
        data={
            "csrf_token": hidden_fields(account.text)["csrf_token"],
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert changed.headers["location"] == "/account?done=password", changed.text


async def meanwhile(
    setup: Setup, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock, change: Change
) -> None:
    """``change`` made from another browser (this one's cookies put aside and back), then the
    clock at the next TOTP step, so that a code the change used is not this one's."""
    held = httpx.Cookies(setup.http.cookies)
    setup.http.cookies.clear()
    await change(setup, pool, settings, clock)
    setup.http.cookies = held
    clock.advance(timedelta(seconds=30))


async def live_sessions(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM sessions WHERE ended_at IS NULL"))


CHANGES = [
    pytest.param(operator_sets_password, id="operator-sets-password"),
    pytest.param(reset_by_mail, id="reset-by-mail"),
    pytest.param(account_page_change, id="account-page-change"),
    pytest.param(operator_disables, id="user-disabled"),
]


async def test_without_a_change_the_code_typed_on_the_open_page_finishes_the_sign_in(
    setup: Setup, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    asked = await password_login(setup)
    assert asked.headers["location"] == SECOND_FACTOR, asked.text
    page = await setup.http.get(SECOND_FACTOR)
    await meanwhile(setup, pool, settings, clock, nothing)
    code = pyotp.TOTP(SECRET).at(clock.now())
    done = await setup.http.post(SECOND_FACTOR, data={**hidden_fields(page.text), "code": code})
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith(REDIRECT)
    assert await live_sessions(pool) == 1


@pytest.mark.parametrize("change", CHANGES)
async def test_a_password_change_or_disabling_after_the_password_step_refuses_the_right_code(
    setup: Setup, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock, change: Change
) -> None:
    asked = await password_login(setup)
    assert asked.headers["location"] == SECOND_FACTOR, asked.text
    page = await setup.http.get(SECOND_FACTOR)
    assert page.status_code == 200, page.text
    await meanwhile(setup, pool, settings, clock, change)
    before = await live_sessions(pool)
    code = pyotp.TOTP(SECRET).at(clock.now())
    refused = await setup.http.post(SECOND_FACTOR, data={**hidden_fields(page.text), "code": code})
    assert refused.status_code == 400, refused.text
    assert EXPIRED[0] in refused.text
    assert "idp_session" not in refused.headers.get("set-cookie", "")
    assert await live_sessions(pool) == before
    assert (await setup.http.get(SECOND_FACTOR)).status_code == 400  # the page is gone too
    mfa = "SELECT count(*) FROM audit_log WHERE action IN ('mfa.succeeded', 'mfa.failed')"
    assert await pool.fetchval(mfa) == (1 if change is account_page_change else 0)


async def test_a_password_change_after_the_password_step_refuses_the_right_passkey(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    key = authenticator()
    async with running(app_instance, pool, settings, admin_api=True) as setup:
        await enrol_passkey(setup.http, EMAIL, key)
        asked = await password_login(setup)
        assert asked.headers["location"] == SECOND_FACTOR, asked.text
        form = await form_of(setup.http, SECOND_FACTOR)
        await meanwhile(setup, pool, settings, clock, operator_sets_password)
        before = await traces(pool)
        refused = await setup.http.post(SECOND_FACTOR_PASSKEY, data=form.answered(key))
        assert refused.status_code == 400, refused.text
        assert EXPIRED[0] in refused.text
        assert await live_sessions(pool) == 0
        assert await traces(pool) == before  # no counter moved, no challenge spent
