"""Brute-force protection that an attacker cannot turn against the owner: guesses lock the
account for every browser but the ones that signed it in before (device cookies, OWASP), and
without such a cookie an attacker still gets only a few guesses a minute, from any addresses."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta

import asyncpg
import httpx
import pytest
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from idp.app import create_app
from idp.clock import FrozenClock
from idp.db import users
from idp.passwords import Passwords
from idp.settings import Settings
from idp.web.security import Cookies
from tests.factories import make_client, make_user
from tests.oauth.flow import Authorization, hidden_fields, query_of, sign_in

REDIRECT = "https://app.example/callback"
ALICE, BOB = "alice@example.com", "bob@example.com"
PASSWORD = "correct horse battery"
WRONG = "Tr0ub4dor&3-guess"
DEVICE = "idp_device"
ALICES_ADDRESS = "198.51.100.7"
# Long enough for the session cookie to have run out: the next sign-in needs the password.
NEXT_DAY = timedelta(hours=13)

Browser = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def browser(
    settings: Settings, clock: FrozenClock, pool: asyncpg.Pool
) -> AsyncIterator[Browser]:
    """``browser(ip)``: a new browser (its own cookie jar) whose requests come from ``ip``."""
    app = create_app(settings, clock=clock, run_scheduler=False)
    opened: list[httpx.AsyncClient] = []
    async with app.router.lifespan_context(app) as state:
        assert state is not None

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state)
            await app(scope, receive, send)

        def at(ip: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=with_state, client=(ip, 50000))
            opened.append(httpx.AsyncClient(transport=transport, base_url=settings.issuer))
            return opened[-1]

        try:
            yield at
        finally:
            for client in opened:
                await client.aclose()


@pytest.fixture
async def client_id(pool: asyncpg.Pool, settings: Settings) -> str:
    client, _ = await make_client(
        pool,
        settings,
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
        scopes=("openid", "profile", "email"),
        first_party=True,
    )
    await make_user(pool, ALICE, PASSWORD)
    await make_user(pool, BOB, PASSWORD, name="Bob")
    return client.client_id


async def attempt(client: httpx.AsyncClient, client_id: str, email: str, password: str) -> int:
    """One sign-in from the login page: 303 (in), 401 (wrong password) or 429 (locked)."""
    start = await client.get(Authorization(client_id, REDIRECT).url())
    assert start.headers["location"].startswith("/login?"), "no session: the password is asked"
    answer = await sign_in(client, start.headers["location"], email, password)
    if answer.status_code == 303:
        assert "code" in query_of(answer.headers["location"])
    return answer.status_code


async def owners_browser(browser: Browser, client_id: str, clock: FrozenClock) -> httpx.AsyncClient:
    """Alice's usual browser: she signed in on it yesterday, and her session has run out."""
    alice = browser(ALICES_ADDRESS)
    assert await attempt(alice, client_id, ALICE, PASSWORD) == 303
    clock.advance(NEXT_DAY)
    return alice


async def lock_alice(browser: Browser, client_id: str, addresses: int = 12) -> list[int]:
    """Wrong passwords for alice, each from another address, none with a device cookie."""
    return [
        await attempt(browser(f"203.0.113.{n}"), client_id, ALICE, WRONG) for n in range(addresses)
    ]


async def test_an_attacker_from_many_addresses_cannot_lock_the_owner_out_of_her_browser(
    browser: Browser, client_id: str, clock: FrozenClock, pool: asyncpg.Pool
) -> None:
    alice = await owners_browser(browser, client_id, clock)
    guesses = await lock_alice(browser, client_id)
    # Guesses at other accounts from alice's own address (an office NAT) lock that address.
    for n in range(6):
        await attempt(browser(ALICES_ADDRESS), client_id, f"user{n}@example.com", WRONG)

    new_browser = await attempt(browser("192.0.2.1"), client_id, ALICE, PASSWORD)
    bob_at_her_address = await attempt(browser(ALICES_ADDRESS), client_id, BOB, PASSWORD)
    at_once = await attempt(alice, client_id, ALICE, PASSWORD)
    attacker_after = await attempt(browser("203.0.113.99"), client_id, ALICE, WRONG)

    assert 429 in guesses, "the account is locked for browsers without her device cookie"
    assert new_browser == 429
    assert bob_at_her_address == 429, "her address is locked"
    assert at_once == 303, "her own browser gets in with the right password, without waiting"
    assert attacker_after == 429, "her sign-in did not lift the attacker's lock"
    assert await pool.fetchval(
        "SELECT locked_until > $1 FROM login_failures WHERE key = $2", clock.now(), f"email:{ALICE}"
    )


async def test_without_a_device_cookie_an_attacker_gets_a_few_guesses_a_minute(
    browser: Browser, client_id: str, clock: FrozenClock
) -> None:
    """One guess every 10 s for 30 minutes, each from a new address: the password is checked
    (401) at most 6 times in any minute, a dozen times in all; the rest are refused unread."""
    checked: list[float] = []
    for n in range(180):
        status = await attempt(browser(f"10.1.{n // 250}.{n % 250}"), client_id, ALICE, WRONG)
        assert status in (401, 429)
        if status == 401:
            checked.append(n * 10.0)
        clock.advance(timedelta(seconds=10))
    still_locked = await attempt(browser("192.0.2.1"), client_id, ALICE, PASSWORD)

    per_minute = max(sum(1 for t in checked if start <= t < start + 60) for start in checked)
    assert per_minute <= 6
    assert len(checked) <= 12
    assert still_locked == 429


def tampered(value: str, part: int) -> str:
    """``value`` with one character of its ``part`` (0 issued, 1 nonce, 2 MAC) changed."""
    parts = value.split(".")
    last = parts[part][-1]
    parts[part] = parts[part][:-1] + ("1" if last != "1" else "2")
    return ".".join(parts)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("alices", 303),
        ("bobs", 429),
        ("forged", 429),
        ("tampered-issued", 429),
        ("tampered-nonce", 429),
        ("tampered-mac", 429),
        ("expired", 429),
    ],
)
async def test_only_a_genuine_device_cookie_of_the_account_tried_is_exempt_from_its_lock(
    kind: str, expected: int, browser: Browser, client_id: str, clock: FrozenClock
) -> None:
    alice = await owners_browser(browser, client_id, clock)
    bob = browser("192.0.2.2")
    assert await attempt(bob, client_id, BOB, PASSWORD) == 303
    genuine, bobs = alice.cookies[DEVICE], bob.cookies[DEVICE]
    if kind == "expired":
        clock.advance(timedelta(days=181))
    presented = {
        "alices": genuine,
        "bobs": bobs,
        "forged": f"{genuine.split('.')[0]}.{'A' * 22}.{'B' * 43}",
        "tampered-issued": tampered(genuine, 0),
        "tampered-nonce": tampered(genuine, 1),
        "tampered-mac": tampered(genuine, 2),
        "expired": genuine,
    }[kind]
    assert 429 in await lock_alice(browser, client_id)

    holder = browser("192.0.2.3")
    holder.cookies.set(DEVICE, presented)
    assert await attempt(holder, client_id, ALICE, PASSWORD) == expected


async def test_failures_with_a_device_cookie_lock_that_cookie_and_not_the_account(
    browser: Browser, client_id: str, clock: FrozenClock, pool: asyncpg.Pool
) -> None:
    """Wrong passwords sent with alice's device cookie (by alice mistyping, or by a thief with a
    copy of it) are throttled like an account's: then that cookie is locked, and only it."""
    alice = await owners_browser(browser, client_id, clock)
    guesses = [await attempt(alice, client_id, ALICE, WRONG) for _ in range(7)]
    locked = await attempt(alice, client_id, ALICE, PASSWORD)
    elsewhere = await attempt(browser("192.0.2.1"), client_id, ALICE, PASSWORD)
    clock.advance(timedelta(seconds=31))  # the first lock lasts 30 s
    later = await attempt(alice, client_id, ALICE, PASSWORD)

    assert guesses == [401] * 6 + [429]
    assert locked == 429
    assert elsewhere == 303, "the account and the address were not locked by those failures"
    assert later == 303
    subjects = await pool.fetch("SELECT subject FROM audit_log WHERE action = 'login.locked'")
    assert [row["subject"][:7] for row in subjects] == ["device:"]
    assert all(ALICE not in row["subject"] for row in subjects)


async def test_the_device_cookie_is_httponly_host_only_and_names_nobody(
    browser: Browser, client_id: str, clock: FrozenClock, settings: Settings, pool: asyncpg.Pool
) -> None:
    alice = await owners_browser(browser, client_id, clock)
    value = alice.cookies[DEVICE]
    user_id: uuid.UUID = await pool.fetchval("SELECT id FROM users WHERE email = $1", ALICE)
    assert ALICE not in value
    assert user_id.hex not in value
    assert str(user_id) not in value
    assert await attempt(alice, client_id, ALICE, PASSWORD) == 303
    assert alice.cookies[DEVICE] != value, "every sign-in issues a new one"

    cookies = Cookies(replace(settings, issuer="https://login.example"))
    response = Response()
    cookies.set_device(response, value)
    header = response.headers["set-cookie"].lower()
    assert header.startswith("__host-idp_device=")
    assert all(part in header for part in ("secure", "httponly", "path=/", "samesite=lax"))
    assert "domain" not in header
    assert f"max-age={180 * 24 * 3600}" in header


async def test_guesses_sent_all_at_once_get_no_more_checks_than_one_by_one(
    browser: Browser, client_id: str
) -> None:
    """Each attempt is counted before its password is checked: thirty guesses arriving together,
    from thirty addresses, get the same 6 checks as guesses sent one after another."""
    forms = []
    for n in range(30):
        attacker = browser(f"203.0.113.{n}")
        start = await attacker.get(Authorization(client_id, REDIRECT).url())
        page = await attacker.get(start.headers["location"])
        forms.append((attacker, hidden_fields(page.text)))
    answers = await asyncio.gather(
        *(
            attacker.post("/login", data={**fields, "email": ALICE, "password": WRONG})
            for attacker, fields in forms
        )
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * 6 + [429] * 24


async def test_every_spelling_of_an_address_counts_against_its_account(
    browser: Browser, client_id: str
) -> None:
    """PostgreSQL finds alice by ``lower(email)``, which folds 'İ' to 'i' where Python's lower()
    does not: the counter is keyed by the same folding, so no spelling escapes alice's lock."""
    assert 429 in await lock_alice(browser, client_id)
    variant = ALICE.replace("i", "\u0130")  # alİce@example.com
    guessed = await attempt(browser("192.0.2.51"), client_id, variant, WRONG)
    signed_in = await attempt(browser("192.0.2.52"), client_id, variant, PASSWORD)
    assert (guessed, signed_in) == (429, 429)


async def test_a_password_change_voids_the_device_cookies_of_the_account(
    browser: Browser, client_id: str, clock: FrozenClock, pool: asyncpg.Pool
) -> None:
    """A device cookie is bound to the password it was earned with: once the password changes
    (after a theft, say), a copy of it no longer exempts anyone from the account's lock."""
    alice = await owners_browser(browser, client_id, clock)
    assert 429 in await lock_alice(browser, client_id)
    user_id: uuid.UUID = await pool.fetchval("SELECT id FROM users WHERE email = $1", ALICE)
    new_hash = Passwords("test").hash_sync("a brand new passphrase")
    await users.set_password_hash(pool, user_id, new_hash, clock.now())

    assert await attempt(alice, client_id, ALICE, "a brand new passphrase") == 429


async def test_people_signing_in_at_once_behind_one_address_are_never_refused_for_it(
    browser: Browser, client_id: str, pool: asyncpg.Pool
) -> None:
    """The client IP counts failures, not attempts: a dozen people behind one office address
    signing in at the same moment all get in, even after five failures from that address."""
    office = "198.51.100.20"
    for n in range(5):
        assert await attempt(browser(office), client_id, f"user{n}@example.com", WRONG) == 401
    people = [f"colleague{n}@example.com" for n in range(12)]
    for email in people:
        await make_user(pool, email, PASSWORD, name=None)
    forms = []
    for email in people:
        colleague = browser(office)
        start = await colleague.get(Authorization(client_id, REDIRECT).url())
        page = await colleague.get(start.headers["location"])
        forms.append((colleague, {**hidden_fields(page.text), "email": email}))
    answers = await asyncio.gather(
        *(
            colleague.post("/login", data={**form, "password": PASSWORD})
            for colleague, form in forms
        )
    )
    assert [answer.status_code for answer in answers] == [303] * len(people)
    assert await attempt(browser(office), client_id, "user9@example.com", WRONG) == 401
    assert await attempt(browser(office), client_id, "user9@example.com", WRONG) == 429
