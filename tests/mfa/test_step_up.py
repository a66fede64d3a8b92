"""Step-up with ``acr_values`` (OIDC Core §3.1.2.1): a session that signed in with a password
only is asked for the second factor alone (no password form) when a client asks for
``urn:idp:acr:mfa``; the session is upgraded in place; prompt=none gets interaction_required
(§3.1.2.6); a user without a second factor gets the password class, which the ID token says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import pyotp
import pytest

from idp.clock import FrozenClock
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import enrol_totp
from tests.oauth.flow import hidden_fields, query_of
from tests.signin_flow import (
    MFA,
    SECOND_FACTOR,
    SECRET,
    Setup,
    error_of,
    id_token_of,
    password_session,
    running,
)


@pytest.fixture
async def setup(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[Setup]:
    async with running(app_instance, pool, settings) as started:
        yield started


async def session_rows(pool: asyncpg.Pool) -> list[tuple[list[str], datetime | None]]:
    rows = await pool.fetch("SELECT amr, mfa_at FROM sessions WHERE ended_at IS NULL")
    return [(list(row["amr"]), row["mfa_at"]) for row in rows]


async def test_a_password_session_is_asked_the_second_factor_only_and_gets_acr_mfa(
    setup: Setup, pool: asyncpg.Pool, kek: bytes, clock: FrozenClock
) -> None:
    await password_session(setup)
    await enrol_totp(pool, kek, setup.user.id, SECRET, clock.now())
    auth = setup.auth()
    asked = await setup.http.get(auth.url(acr_values=f"urn:other {MFA}"))
    assert asked.status_code == 303, asked.text
    assert asked.headers["location"] == SECOND_FACTOR
    page = await setup.http.get(SECOND_FACTOR)
    assert page.status_code == 200, page.text
    assert "Enter the code from your authenticator app" in page.text
    assert 'name="password"' not in page.text
    code = pyotp.TOTP(SECRET).at(clock.now())
    done = await setup.http.post(SECOND_FACTOR, data={**hidden_fields(page.text), "code": code})
    assert done.status_code == 303, done.text
    claims = await id_token_of(setup, auth, done)
    assert claims["acr"] == MFA
    assert {"pwd", "otp", "mfa"} <= set(claims["amr"])
    # The session itself was upgraded (one session, in place), and it is audited.
    assert await session_rows(pool) == [(["pwd", "otp", "mfa"], clock.now())]
    actions = await pool.fetch("SELECT action FROM audit_log WHERE action = 'session.stepped_up'")
    assert len(actions) == 1
    # Now the session has the second factor: the next request is not asked again.
    again = setup.auth()
    direct = await setup.http.get(again.url(acr_values=MFA))
    assert (await id_token_of(setup, again, direct))["acr"] == MFA


async def test_prompt_none_with_an_unmet_mfa_request_is_interaction_required(
    setup: Setup, pool: asyncpg.Pool, kek: bytes, clock: FrozenClock
) -> None:
    await password_session(setup)
    await enrol_totp(pool, kek, setup.user.id, SECRET, clock.now())
    auth = setup.auth()
    answer = await setup.http.get(auth.url(acr_values=MFA, prompt="none"))
    assert error_of(answer, auth) == "interaction_required"
    assert await pool.fetchval("SELECT count(*) FROM authorization_codes") == 1  # the first only


async def test_a_user_without_a_second_factor_gets_a_code_with_acr_pwd(setup: Setup) -> None:
    await password_session(setup)
    auth = setup.auth()
    answer = await setup.http.get(auth.url(acr_values=MFA, prompt="none"))
    claims = await id_token_of(setup, auth, answer)
    assert claims["acr"] == "urn:idp:acr:pwd"
    assert claims["amr"] == ["pwd"]


async def test_a_wrong_code_at_step_up_leaves_the_session_as_it_was(
    setup: Setup, pool: asyncpg.Pool, kek: bytes, clock: FrozenClock
) -> None:
    await password_session(setup)
    await enrol_totp(pool, kek, setup.user.id, SECRET, clock.now())
    asked = await setup.http.get(setup.auth().url(acr_values=MFA))
    assert asked.headers["location"] == SECOND_FACTOR
    page = await setup.http.get(SECOND_FACTOR)
    wrong = f"{(int(pyotp.TOTP(SECRET).at(clock.now())) + 1) % 1_000_000:06d}"
    refused = await setup.http.post(SECOND_FACTOR, data={**hidden_fields(page.text), "code": wrong})
    assert refused.status_code == 401, refused.text
    assert await session_rows(pool) == [(["pwd"], None)]


async def test_step_up_is_refused_once_the_browser_no_longer_holds_the_session(
    setup: Setup, pool: asyncpg.Pool, kek: bytes, clock: FrozenClock
) -> None:
    await password_session(setup)
    await enrol_totp(pool, kek, setup.user.id, SECRET, clock.now())
    asked = await setup.http.get(setup.auth().url(acr_values=MFA))
    assert asked.headers["location"] == SECOND_FACTOR
    page = await setup.http.get(SECOND_FACTOR)
    await pool.execute("UPDATE sessions SET ended_at = $1", clock.now())
    code = pyotp.TOTP(SECRET).at(clock.now())
    refused = await setup.http.post(SECOND_FACTOR, data={**hidden_fields(page.text), "code": code})
    assert refused.status_code == 400, refused.text
    assert await pool.fetchval("SELECT count(*) FROM authorization_codes") == 1  # the first only


@pytest.mark.parametrize(
    "acr_values",
    ["x" * 5000, f"{MFA}\x00", f"{MFA}\n{MFA}", "\u00e9"],
    ids=["huge", "nul", "newline", "non-ascii"],
)
async def test_hostile_acr_values_are_a_clear_error_never_a_500(
    setup: Setup, acr_values: str
) -> None:
    await password_session(setup)
    auth = setup.auth()
    answer = await setup.http.get(auth.url(acr_values=acr_values))
    assert answer.status_code == 303, answer.text
    query = query_of(answer.headers["location"])
    assert query["error"] == "invalid_request"
    assert "acr_values" in query["error_description"]


async def test_acr_values_not_utf8_or_repeated_is_an_error_and_unknown_ones_are_ignored(
    setup: Setup,
) -> None:
    await password_session(setup)
    for raw in ("&acr_values=%FF", f"&acr_values={MFA}&acr_values={MFA}"):
        auth = setup.auth()
        answer = await setup.http.get(auth.url() + raw)
        assert answer.status_code == 303, answer.text
        assert query_of(answer.headers["location"])["error"] == "invalid_request"
    auth = setup.auth()
    unknown = await setup.http.get(auth.url(acr_values="%ff urn:unknown phr"))
    assert (await id_token_of(setup, auth, unknown))["acr"] == "urn:idp:acr:pwd"
