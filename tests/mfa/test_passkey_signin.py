"""Signing in with a passkey through the running app (WebAuthn L2 §7.2, software authenticator):
passwordless on ``/login`` and ``/account/sign-in`` (``POST /login/passkey``: a passkey with user
verification is two factors, RFC 8176 "hwk"/"swk" + "user" + "mfa", acr "phr"), as the second
factor after a password, and as the step-up asked by ``acr_values=phr`` (OIDC Core §3.1.2.1)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import asyncpg
import pyotp
import pytest

from idp.clock import FrozenClock
from idp.db import passkeys
from idp.mfa.passkeys import REFUSED
from idp.settings import Settings
from idp.web.forms import MAX_BODY_BYTES
from idp.web.second_factor import PASSKEY_ONLY
from tests.conftest import InstanceFactory
from tests.factories import PASSWORD, enrol_totp, make_user
from tests.oauth.flow import Authorization, hidden_fields, sign_in
from tests.passkey_pages import (
    LOGIN,
    SECOND_FACTOR,
    SECOND_FACTOR_PASSKEY,
    authenticator,
    enrol_passkey,
    form_of,
    only_credential,
    traces,
)
from tests.signin_flow import EMAIL, MFA, SECRET, id_token_of, running
from tests.signin_flow import Setup as SignIn
from tests.softkey import SoftAuthenticator

OTHER = "bob@example.com"


@dataclass
class Setup(SignIn):
    key: SoftAuthenticator


@asynccontextmanager
async def running_with(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    key: SoftAuthenticator,
    *,
    email: str = EMAIL,
    enrolled: bool = True,
) -> AsyncIterator[Setup]:
    """tests/signin_flow.py's app, client and user (``email``), the user's authenticator
    ``key`` (its passkey added through the page if ``enrolled``)."""
    async with running(app_instance, pool, settings, email=email) as base:
        if enrolled:
            await enrol_passkey(base.http, email, key)
        yield Setup(base.app, base.http, base.client_id, base.secret, base.user, key)


@pytest.fixture
async def setup(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[Setup]:
    """Alice, who has a passkey (added through the page), and a first-party app."""
    async with running_with(app_instance, pool, settings, authenticator()) as started:
        yield started


async def parked_login(setup: Setup, auth: Authorization, **extra: str) -> str:
    started = await setup.http.get(auth.url(**extra))
    assert started.status_code == 303, started.text
    location: str = started.headers["location"]
    assert location.startswith("/login?"), location
    return location


@pytest.mark.parametrize("synced", [False, True], ids=["device-bound", "synced"])
async def test_a_parked_request_signs_in_with_a_passkey_alone(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, synced: bool
) -> None:
    key = authenticator(backup_eligible=synced)
    async with running_with(app_instance, pool, settings, key) as setup:
        user = setup.user
        auth = setup.auth()
        form = await form_of(setup.http, await parked_login(setup, auth))
        assert form.options["allowCredentials"] == []  # discoverable: the browser offers its own
        assert form.options["userVerification"] == "required"
        assert form.options["rpId"] == "idp.test"
        done = await setup.http.post(LOGIN, data=form.answered(key))
        claims = await id_token_of(setup, auth, done)
    assert claims["amr"] == ["swk" if synced else "hwk", "user", "mfa"]
    assert claims["acr"] == "phr"
    assert claims["sub"] == str(user.id)
    (stored,) = await passkeys.of_user(pool, user.id)
    assert stored.sign_count == 1
    assert stored.last_used_at is not None
    rows = await pool.fetch(
        "SELECT subject, details FROM audit_log WHERE action = 'login.succeeded' ORDER BY id"
    )
    assert [json.loads(row["details"]).get("method") for row in rows] == [None, "passkey"]
    assert rows[-1]["subject"] == str(user.id)


async def test_the_account_page_signs_in_with_a_passkey(setup: Setup, pool: asyncpg.Pool) -> None:
    form = await form_of(setup.http, "/account/sign-in")
    done = await setup.http.post(LOGIN, data=form.answered(setup.key))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/account"
    assert (await setup.http.get("/account")).status_code == 200
    rows = await pool.fetch("SELECT amr FROM sessions")
    assert sorted(list(row["amr"]) for row in rows) == [["hwk", "user", "mfa"], ["pwd"]]


async def test_a_disabled_user_cannot_sign_in_with_a_passkey(
    setup: Setup, pool: asyncpg.Pool
) -> None:
    await pool.execute("UPDATE users SET disabled = true WHERE id = $1", setup.user.id)
    auth = setup.auth()
    form = await form_of(setup.http, await parked_login(setup, auth))
    refused = await setup.http.post(LOGIN, data=form.answered(setup.key))
    assert refused.status_code == 401, refused.text
    assert "This account cannot sign in." in refused.text
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 1  # enrolment's only
    assert await pool.fetchval("SELECT count(*) FROM authorization_codes") == 0


async def password_then_second_factor(setup: Setup, auth: Authorization) -> None:
    answer = await sign_in(setup.http, await parked_login(setup, auth), EMAIL, PASSWORD)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == SECOND_FACTOR


async def test_a_password_is_followed_by_the_passkey_as_second_factor(
    setup: Setup, pool: asyncpg.Pool
) -> None:
    auth = setup.auth()
    await password_then_second_factor(setup, auth)
    form = await form_of(setup.http, SECOND_FACTOR)
    allowed = [entry["id"] for entry in form.options["allowCredentials"]]
    assert len(allowed) == 1  # Alice's own passkey listed
    done = await setup.http.post(SECOND_FACTOR_PASSKEY, data=form.answered(setup.key))
    claims = await id_token_of(setup, auth, done)
    assert claims["amr"] == ["pwd", "hwk", "user", "mfa"]
    assert claims["acr"] == "phr"
    (stored,) = await passkeys.of_user(pool, setup.user.id)
    assert stored.sign_count == 1
    assert stored.last_used_at is not None
    audited = await pool.fetchval("SELECT details FROM audit_log WHERE action = 'mfa.succeeded'")
    assert json.loads(audited)["method"] == "passkey"


async def test_another_users_passkey_is_refused_as_second_factor(
    setup: Setup, pool: asyncpg.Pool
) -> None:
    await make_user(pool, OTHER)
    bobs = authenticator()
    await enrol_passkey(setup.http, OTHER, bobs)
    auth = setup.auth()
    await password_then_second_factor(setup, auth)
    form = await form_of(setup.http, SECOND_FACTOR)
    before = await traces(pool)
    forged = form.answered(bobs, credential_id=only_credential(bobs))
    refused = await setup.http.post(SECOND_FACTOR_PASSKEY, data=forged)
    assert refused.status_code == 401, refused.text
    assert REFUSED in refused.text
    assert await traces(pool) == before
    # Alice's own passkey still completes it.
    again = await form_of(setup.http, SECOND_FACTOR)
    done = await setup.http.post(SECOND_FACTOR_PASSKEY, data=again.answered(setup.key))
    assert (await id_token_of(setup, auth, done))["acr"] == "phr"


async def totp_session(setup: Setup, pool: asyncpg.Pool, kek: bytes, clock: FrozenClock) -> None:
    """Alice adds an app, then signs in with her password and its code."""
    await enrol_totp(pool, kek, setup.user.id, SECRET, clock.now())
    auth = setup.auth()
    await password_then_second_factor(setup, auth)
    page = await setup.http.get(SECOND_FACTOR)
    code = pyotp.TOTP(SECRET).at(clock.now())
    done = await setup.http.post(SECOND_FACTOR, data={**hidden_fields(page.text), "code": code})
    assert (await id_token_of(setup, auth, done))["acr"] == MFA


async def test_step_up_to_phr_asks_for_the_passkey_only(
    setup: Setup, pool: asyncpg.Pool, kek: bytes, clock: FrozenClock
) -> None:
    await totp_session(setup, pool, kek, clock)
    auth = setup.auth()
    asked = await setup.http.get(auth.url(acr_values="phr"))
    assert asked.status_code == 303, asked.text
    assert asked.headers["location"] == SECOND_FACTOR
    page = await setup.http.get(SECOND_FACTOR)
    assert 'name="code"' not in page.text
    assert 'name="password"' not in page.text
    code = pyotp.TOTP(SECRET).at(clock.now())
    posted = await setup.http.post(SECOND_FACTOR, data={**hidden_fields(page.text), "code": code})
    assert posted.status_code == 400, posted.text
    assert PASSKEY_ONLY in posted.text
    form = await form_of(setup.http, SECOND_FACTOR)
    done = await setup.http.post(SECOND_FACTOR_PASSKEY, data=form.answered(setup.key))
    claims = await id_token_of(setup, auth, done)
    assert claims["acr"] == "phr"
    assert {"hwk", "user", "mfa"} <= set(claims["amr"])


@pytest.fixture
async def bobs(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[Setup]:
    """Bob, who has no passkey, and a first-party app."""
    key = authenticator()
    async with running_with(
        app_instance, pool, settings, key, email=OTHER, enrolled=False
    ) as started:
        yield started


async def test_phr_for_a_user_without_a_passkey_gets_what_they_can(
    bobs: Setup, pool: asyncpg.Pool, kek: bytes, clock: FrozenClock
) -> None:
    auth = bobs.auth()
    login = await parked_login(bobs, auth, acr_values="phr")
    done = await sign_in(bobs.http, login, OTHER, PASSWORD)
    assert (await id_token_of(bobs, auth, done))["acr"] == "urn:idp:acr:pwd"
    await enrol_totp(pool, kek, bobs.user.id, SECRET, clock.now())
    bobs.http.cookies.clear()
    auth = bobs.auth()
    login = await parked_login(bobs, auth, acr_values="phr")
    asked = await sign_in(bobs.http, login, OTHER, PASSWORD)
    assert asked.headers["location"] == SECOND_FACTOR, asked.text
    page = await bobs.http.get(SECOND_FACTOR)
    assert 'id="passkey-options"' not in page.text
    code = pyotp.TOTP(SECRET).at(clock.now())
    done = await bobs.http.post(SECOND_FACTOR, data={**hidden_fields(page.text), "code": code})
    assert (await id_token_of(bobs, auth, done))["acr"] == MFA


async def test_phr_steps_a_password_session_up_to_mfa_for_a_user_with_an_app_only(
    bobs: Setup, pool: asyncpg.Pool, kek: bytes, clock: FrozenClock
) -> None:
    auth = bobs.auth()
    done = await sign_in(bobs.http, await parked_login(bobs, auth), OTHER, PASSWORD)
    assert (await id_token_of(bobs, auth, done))["acr"] == "urn:idp:acr:pwd"
    await enrol_totp(pool, kek, bobs.user.id, SECRET, clock.now())
    asked = await bobs.http.get(bobs.auth().url(acr_values="phr"))
    assert asked.headers["location"] == SECOND_FACTOR, asked.text


def form_body(fields: dict[str, str], credential: dict[str, object], size: int) -> bytes:
    """``fields`` and ``credential`` (padded in its client extension results, which §5.1 lets a
    browser fill and idp ignores) as a form body of exactly ``size`` bytes."""
    padded = {**credential, "clientExtensionResults": {"pad": ""}}
    base = len(urlencode({**fields, "credential": json.dumps(padded)}))
    padded["clientExtensionResults"] = {"pad": "x" * (size - base)}
    body = urlencode({**fields, "credential": json.dumps(padded)}).encode()
    assert len(body) == size
    return body


async def test_an_answer_filling_the_form_cap_is_verified_and_one_byte_more_is_a_clear_400(
    setup: Setup, pool: asyncpg.Pool
) -> None:
    """The form's body cap (idp.web.forms.MAX_BODY_BYTES) is the only bound on a passkey's
    answer: one byte over it gets a readable page and spends nothing; at it, the same answer
    signs in."""
    form = await form_of(setup.http, "/account/sign-in")
    credential = setup.key.authenticate(form.options)
    headers = {"content-type": "application/x-www-form-urlencoded"}
    before = await traces(pool)
    over = form_body(form.fields, credential, MAX_BODY_BYTES + 1)
    refused = await setup.http.post(LOGIN, content=over, headers=headers)
    assert refused.status_code == 400, refused.text
    assert "The sign-in form was not sent correctly." in refused.text
    assert await traces(pool) == before
    at_cap = form_body(form.fields, credential, MAX_BODY_BYTES)
    done = await setup.http.post(LOGIN, content=at_cap, headers=headers)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/account"
