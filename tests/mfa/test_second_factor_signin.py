"""Signing in with a second factor: after the password of a user who has one, no session until
a code from the authenticator app (each step's code once) or a recovery code (once, audited and
mailed); codes count toward the password's locks; /login and /account/sign-in alike."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import httpx
import pyotp
import pytest

from idp.clock import FrozenClock
from idp.db import second_factors
from idp.db.users import User
from idp.mfa.challenge import PendingSignIns
from idp.mfa.recovery import RecoveryHasher, new_codes
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import PASSWORD, enrol_totp, make_user, queued_mail
from tests.oauth.flow import hidden_fields, query_of
from tests.signin_flow import (
    REDIRECT,
    SECOND_FACTOR,
    SECRET,
    Setup,
    password_login,
    running,
)
from tests.web.malformed import FORM, JSON, Case, Context, Endpoint, Page, Redirect, run, wait

PENDING_COOKIE = "idp_second_factor"
LOCKED = "Too many failed sign-ins"


async def enrol_recovery(pool: asyncpg.Pool, kek: bytes, user: User, now: datetime) -> list[str]:
    codes = new_codes()
    hasher = RecoveryHasher(kek)
    hashes = [hasher.hash(code) for code in codes]
    async with pool.acquire() as connection, connection.transaction():
        await second_factors.replace_recovery_codes(
            connection, user.id, [h for h in hashes if h is not None], now
        )
    return codes


def code_at(now: datetime, steps: int = 0) -> str:
    return pyotp.TOTP(SECRET).at(now + timedelta(seconds=30 * steps))


@pytest.fixture
async def setup(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    kek: bytes,
    clock: FrozenClock,
) -> AsyncIterator[Setup]:
    """Alice, who has an authenticator app, and a first-party app."""
    async with running(app_instance, pool, settings) as started:
        await enrol_totp(pool, kek, started.user.id, SECRET, clock.now())
        yield started


async def code_step(http: httpx.AsyncClient, code: str) -> httpx.Response:
    page = await http.get(SECOND_FACTOR)
    assert page.status_code == 200, page.text
    assert "Enter the code from your authenticator app" in page.text
    assert "or use a recovery code" in page.text
    return await http.post(SECOND_FACTOR, data={**hidden_fields(page.text), "code": code})


async def sign_in_with(setup: Setup, code: str) -> httpx.Response:
    """A new browser's whole sign-in with ``code`` as the second factor: the code step's answer."""
    setup.http.cookies.clear()
    auth = setup.auth()
    asked = await password_login(setup, auth)
    assert asked.status_code == 303, asked.text
    assert asked.headers["location"] == SECOND_FACTOR
    return await code_step(setup.http, code)


async def live_sessions(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT amr, mfa_at FROM sessions WHERE ended_at IS NULL")


async def test_password_and_totp_code_sign_in_ends_with_a_code_at_the_client(
    setup: Setup, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    auth = setup.auth()
    asked = await password_login(setup, auth)
    assert asked.headers["location"] == SECOND_FACTOR
    cookie = asked.headers["set-cookie"]
    assert PENDING_COOKIE in cookie
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    done = await code_step(setup.http, code_at(clock.now()))
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith(REDIRECT)
    assert query_of(done.headers["location"])["state"] == auth.state
    rows = await live_sessions(pool)
    assert [(list(row["amr"]), row["mfa_at"]) for row in rows] == [
        (["pwd", "otp", "mfa"], clock.now())
    ]
    audited = await pool.fetch(
        "SELECT action, details FROM audit_log WHERE action ~ '^(login|mfa)\\.' ORDER BY id"
    )
    actions = [row["action"] for row in audited]
    assert actions == ["login.password_verified", "mfa.succeeded"]
    assert code_at(clock.now()) not in str([row["details"] for row in audited])


async def test_the_password_alone_gives_no_session_and_no_code(
    setup: Setup, pool: asyncpg.Pool
) -> None:
    auth = setup.auth()
    asked = await password_login(setup, auth)
    assert asked.headers["location"] == SECOND_FACTOR
    assert "idp_session" not in asked.headers.get("set-cookie", "")
    again = await setup.http.get(auth.url())
    assert again.headers["location"].startswith("/login?"), again.text
    assert await live_sessions(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM authorization_codes") == 0


async def test_a_code_is_accepted_once_and_only_within_one_step_of_drift(
    setup: Setup, clock: FrozenClock
) -> None:
    now = clock.now()
    two_steps_ago = await sign_in_with(setup, code_at(now, -2))
    assert two_steps_ago.status_code == 401, two_steps_ago.text
    assert "not valid" in two_steps_ago.text
    one_step_ago = await sign_in_with(setup, code_at(now, -1))
    assert one_step_ago.status_code == 303, one_step_ago.text
    replayed = await sign_in_with(setup, code_at(now, -1))
    assert replayed.status_code == 401, replayed.text
    current = await sign_in_with(setup, code_at(now))
    assert current.status_code == 303, current.text
    current_again = await sign_in_with(setup, code_at(now))
    assert current_again.status_code == 401, current_again.text
    older_after_newer = await sign_in_with(setup, code_at(now, -1))
    assert older_after_newer.status_code == 401


async def test_wrong_codes_lock_like_wrong_passwords(
    setup: Setup, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    auth = setup.auth()
    await password_login(setup, auth)
    page = await setup.http.get(SECOND_FACTOR)
    fields = hidden_fields(page.text)
    answers = []
    for guess in range(10):
        wrong = f"{(int(code_at(clock.now())) + 1 + guess) % 1_000_000:06d}"
        answers.append(await setup.http.post(SECOND_FACTOR, data={**fields, "code": wrong}))
    assert answers[0].status_code == 401
    assert answers[-1].status_code == 429
    assert LOCKED in answers[-1].text
    right = await setup.http.post(SECOND_FACTOR, data={**fields, "code": code_at(clock.now())})
    assert right.status_code == 429
    assert LOCKED in right.text
    assert await live_sessions(pool) == []
    # Typing the password again gives no fresh guesses: the account is locked for it too.
    setup.http.cookies.clear()
    retyped = await password_login(setup, auth)
    assert retyped.status_code == 429, retyped.text
    failed = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'mfa.failed'")
    assert failed >= 5
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'login.locked'")


async def test_a_recovery_code_works_once_is_audited_and_mailed(
    setup: Setup, pool: asyncpg.Pool, kek: bytes, clock: FrozenClock
) -> None:
    codes = await enrol_recovery(pool, kek, setup.user, clock.now())
    first = await sign_in_with(setup, codes[3].lower())  # typed in any case
    assert first.status_code == 303
    assert first.headers["location"].startswith(REDIRECT)
    again = await sign_in_with(setup, codes[3])
    assert again.status_code == 401, again.text
    assert [list(row["amr"]) for row in await live_sessions(pool)] == [["pwd", "otp", "mfa"]]
    used = await pool.fetch(
        "SELECT subject, details FROM audit_log WHERE action = 'mfa.recovery_code_used'"
    )
    assert [row["subject"] for row in used] == [str(setup.user.id)]
    assert codes[3] not in str(await pool.fetch("SELECT details, reason FROM audit_log"))
    mails = await queued_mail(pool, setup.app.state["mailing"].outbox)
    assert [(mail.to, mail.template) for mail in mails] == [
        ("alice@example.com", "recovery_code_used")
    ]
    assert "9 unused codes are left" in " ".join(mails[0].text.split())


async def test_the_pending_state_expires(
    setup: Setup, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    auth = setup.auth()
    await password_login(setup, auth)
    page = await setup.http.get(SECOND_FACTOR)
    clock.advance(timedelta(minutes=5, seconds=1))
    late = await setup.http.post(
        SECOND_FACTOR, data={**hidden_fields(page.text), "code": code_at(clock.now())}
    )
    assert late.status_code == 400
    assert "expired" in late.text
    assert (await setup.http.get(SECOND_FACTOR)).status_code == 400
    assert await live_sessions(pool) == []


async def test_a_forged_or_altered_pending_state_is_refused(
    setup: Setup, pool: asyncpg.Pool, clock: FrozenClock, settings: Settings
) -> None:
    bob = await make_user(pool, "bob@example.com")
    auth = setup.auth()
    await password_login(setup, auth)
    genuine = setup.http.cookies[PENDING_COOKIE]
    payload, mac = genuine.split(".")
    other_key = PendingSignIns(b"k" * 32).issue(setup.user, "alice@example.com", "", clock.now())
    ours = setup.app.state["cookies"].pending_sign_ins
    bobs = ours.issue(bob, "bob@example.com", "", clock.now())
    forgeries = {
        "another key": other_key,
        "altered mac": f"{payload}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        "bob's payload, alice's mac": f"{bobs.split('.')[0]}.{mac}",
        "garbage": "not.a-state",
    }
    for what, value in forgeries.items():
        setup.http.cookies.set(PENDING_COOKIE, value, domain="idp.test")
        shown = await setup.http.get(SECOND_FACTOR)
        assert shown.status_code == 400, what
        csrf = setup.app.state["cookies"].csrf_token("second-factor", value)
        posted = await setup.http.post(
            SECOND_FACTOR, data={"csrf_token": csrf, "code": code_at(clock.now())}
        )
        assert posted.status_code == 400, what
    assert await live_sessions(pool) == []
    assert uuid.UUID(str(setup.user.id)) != bob.id


async def test_the_code_form_needs_its_csrf_token(
    setup: Setup, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    auth = setup.auth()
    await password_login(setup, auth)
    code = code_at(clock.now())
    missing = await setup.http.post(SECOND_FACTOR, data={"code": code})
    forged = await setup.http.post(SECOND_FACTOR, data={"code": code, "csrf_token": "0" * 64})
    # A token of another pending state (another browser's) is not this one's.
    other = setup.app.state["cookies"].csrf_token("second-factor", "another-state")
    foreign = await setup.http.post(SECOND_FACTOR, data={"code": code, "csrf_token": other})
    assert [r.status_code for r in (missing, forged, foreign)] == [400, 400, 400]
    assert await live_sessions(pool) == []
    done = await code_step(setup.http, code)  # the code was not spent by the refused posts
    assert done.status_code == 303


async def test_the_account_sign_in_also_asks_for_the_second_factor(
    setup: Setup, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    http = setup.http
    form = hidden_fields((await http.get("/account/sign-in")).text)
    asked = await http.post(
        "/account/sign-in", data={**form, "email": "alice@example.com", "password": PASSWORD}
    )
    assert asked.status_code == 303
    assert asked.headers["location"] == SECOND_FACTOR
    account = await http.get("/account")
    assert account.headers["location"] == "/account/sign-in"
    done = await code_step(http, code_at(clock.now()))
    assert done.status_code == 303
    assert done.headers["location"] == "/account"
    assert (await http.get("/account")).status_code == 200
    assert [list(row["amr"]) for row in await live_sessions(pool)] == [["pwd", "otp", "mfa"]]


async def test_without_a_second_factor_the_sign_in_is_unchanged(
    setup: Setup, pool: asyncpg.Pool
) -> None:
    await second_factors.remove_totp(pool, setup.user.id)
    auth = setup.auth()
    done = await password_login(setup, auth)
    assert done.status_code == 303
    assert done.headers["location"].startswith(REDIRECT)
    assert [(list(r["amr"]), r["mfa_at"]) for r in await live_sessions(pool)] == [(["pwd"], None)]
    assert PENDING_COOKIE not in done.headers.get("set-cookie", "")


# -- hostile input: tests/web/malformed.py ------------------------------------------------------
@dataclass
class Pending(Context):
    """A browser whose password step at /account/sign-in is done."""


async def pending_form(ctx: Pending) -> dict[str, str]:
    form = hidden_fields((await ctx.http.get("/account/sign-in")).text)
    asked = await ctx.http.post(
        "/account/sign-in", data={**form, "email": "alice@example.com", "password": PASSWORD}
    )
    assert asked.headers["location"] == SECOND_FACTOR, asked.text
    return hidden_fields((await ctx.http.get(SECOND_FACTOR)).text)


def forget_pending(ctx: Context) -> None:
    ctx.http.cookies.delete(PENDING_COOKIE)


CODE = Endpoint[Pending]("POST", SECOND_FACTOR, {"code": "000000"}, None, FORM, pending_form)
SHOW = Endpoint[Pending]("GET", SECOND_FACTOR, prepare=pending_form)
WRONG = Page(401, ("not valid",))
EXPIRED = Page(400, ("expired",))
# fmt: off
CASES = [
    SHOW("show-garbage-query", Page(200), raw=b"code=%ff&request=x"),
    SHOW("show-without-pending", EXPIRED, steps=[forget_pending]),
    CODE("code-wrong", WRONG),
    CODE("code-missing", WRONG, code=None),
    CODE("code-empty", WRONG, code=""),
    CODE("code-nul", WRONG, code="12\x0034"),
    CODE("code-10kb", WRONG, code="1" * 10_240),
    CODE("code-arabic-digits", WRONG, code="\u0661\u0662\u0663\u0664\u0665\u0666"),
    CODE("code-fullwidth-digits", WRONG, code="\uff11\uff12\uff13\uff14\uff15\uff16"),
    CODE("code-recovery-shaped", WRONG, code="ABCD-EFGH-JKLM"),
    CODE("code-surrogate-escape", Page(400), raw=b"code=%ed%a0%80"),
    CODE("code-sql", WRONG, code="' OR 1=1 --"),
    CODE("code-duplicated", Page(400), code=["123456", "654321"]),
    CODE("code-json", Page(400), as_json=True, content_type=JSON),
    CODE("code-no-content-type", Page(400), content_type=None),
    CODE("code-20kb", Page(400), raw=b"pad=" + b"a" * 20_480),
    CODE("code-no-csrf-token", Page(400), csrf_token=None),
    CODE("code-forged-csrf-token", Page(400), csrf_token="0" * 64),
    CODE("code-non-ascii-csrf-token", Page(400), csrf_token="\u00e9" * 64),
    CODE("code-without-pending", Page(400), steps=[forget_pending]),
    CODE("code-pending-expired", EXPIRED, steps=[wait(timedelta(minutes=6))]),
    CODE("code-right-after-hostile-rows", Redirect("/account", {}), code="{code}"),
]
# fmt: on


@dataclass
class WithCode(Pending):
    async def value(self, name: str) -> str:
        assert name == "code"
        return code_at(self.clock.now())


@pytest.mark.parametrize("case", CASES)
async def test_hostile_input_to_the_second_factor_form_is_refused_without_crashing(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    kek: bytes,
    clock: FrozenClock,
    case: Case[Pending],
) -> None:
    user = await make_user(pool, "alice@example.com")
    await enrol_totp(pool, kek, user.id, SECRET, clock.now())
    async with app_instance() as app:
        await run(WithCode(app.client, clock), case)


async def test_typing_the_password_again_gives_no_fresh_guesses_at_the_code(
    setup: Setup, clock: FrozenClock
) -> None:
    """The password step leaves its attempt counted for a user with a second factor: were it
    cleared, a holder of the password would get five more guesses each time they typed it."""
    wrong = f"{(int(code_at(clock.now())) + 500_000) % 1_000_000:06d}"
    answers = []
    for _ in range(2):
        asked = await sign_in_with(setup, wrong)
        answers.append(asked.status_code)
        page = await setup.http.get(SECOND_FACTOR)
        for _ in range(2):
            retry = await setup.http.post(
                SECOND_FACTOR, data={**hidden_fields(page.text), "code": wrong}
            )
            answers.append(retry.status_code)
    assert answers == [401, 401, 401, 401, 429, 429]
