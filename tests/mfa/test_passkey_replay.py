"""One passkey assertion posted twice at once (a replay racing the original) signs in at most
once: the challenge is spent by a single conditional INSERT and the signature counter moved by a
single conditional UPDATE, in one transaction (idp.mfa.passkeys; WebAuthn L2 §7.2 step 21, the
counter, and §13.4.3, a challenge used once), so of two concurrent uses one wins and the other
is refused with a page, not a 500. Both with a counting authenticator and one that always sends
0 (where the spent challenge is the only guard)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest

from idp.mfa.passkeys import EXPIRED, REFUSED
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.passkey_pages import (
    LOGIN,
    SECOND_FACTOR,
    SECOND_FACTOR_PASSKEY,
    account_sign_in,
    authenticator,
    enrol_passkey,
    form_of,
)
from tests.signin_flow import EMAIL, Setup, running
from tests.softkey import SoftAuthenticator

RACERS = 2
COUNTING = [pytest.param(True, id="counting"), pytest.param(False, id="always-zero")]


@asynccontextmanager
async def alice_with_passkey(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, key: SoftAuthenticator
) -> AsyncIterator[Setup]:
    async with running(app_instance, pool, settings) as setup:
        await enrol_passkey(setup.http, EMAIL, key)
        yield setup


async def sessions_made(pool: asyncpg.Pool) -> int:
    """Sessions other than the one enrol_passkey signed in with (ended since)."""
    return int(await pool.fetchval("SELECT count(*) FROM sessions WHERE ended_at IS NULL"))


async def race(http: httpx.AsyncClient, path: str, data: dict[str, str]) -> list[httpx.Response]:
    return list(await asyncio.gather(*(http.post(path, data=data) for _ in range(RACERS))))


def one_wins(answers: list[httpx.Response], signed_in_to: str) -> None:
    won = [a for a in answers if a.status_code == 303]
    lost = [a for a in answers if a.status_code != 303]
    assert len(won) == 1, [(a.status_code, a.text[:200]) for a in answers]
    assert won[0].headers["location"] == signed_in_to
    for answer in lost:
        assert answer.status_code == 401, answer.text
        assert EXPIRED in answer.text or REFUSED in answer.text
        assert "idp_session" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize("counting", COUNTING)
async def test_one_passwordless_assertion_posted_twice_at_once_signs_in_once(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, counting: bool
) -> None:
    key = authenticator(counting=counting)
    async with alice_with_passkey(app_instance, pool, settings, key) as setup:
        before = await sessions_made(pool)
        form = await form_of(setup.http, "/account/sign-in")
        held = httpx.Cookies(setup.http.cookies)
        answer = form.answered(key)
        answers = await race(setup.http, LOGIN, answer)
        one_wins(answers, "/account")
        assert await sessions_made(pool) == before + 1
        setup.http.cookies = held  # the pre-login browser again: once more, later
        late = await setup.http.post(LOGIN, data=answer)
        assert late.status_code == 401, late.text
        assert await sessions_made(pool) == before + 1


@pytest.mark.parametrize("counting", COUNTING)
async def test_one_second_factor_assertion_posted_twice_at_once_signs_in_once(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, counting: bool
) -> None:
    key = authenticator(counting=counting)
    async with alice_with_passkey(app_instance, pool, settings, key) as setup:
        before = await sessions_made(pool)
        asked = await account_sign_in(setup.http, EMAIL)
        assert asked.headers["location"] == SECOND_FACTOR, asked.text
        form = await form_of(setup.http, SECOND_FACTOR)
        answers = await race(setup.http, SECOND_FACTOR_PASSKEY, form.answered(key))
        one_wins(answers, "/account")
        assert await sessions_made(pool) == before + 1
