"""IDP_MFA=required (a user without a second factor sets up an authenticator app or a passkey
on /login/enrol before the sign-in completes) and a client's ``--require-mfa`` (an essential
``urn:idp:acr:mfa``, OIDC Core §5.5.1.1): one requirement, however it was asked."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pyotp
import pytest

from idp.clock import FrozenClock
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import PASSWORD, enrol_totp
from tests.oauth.flow import hidden_fields
from tests.passkey_pages import authenticator, options_of
from tests.signin_flow import (
    EMAIL,
    MFA,
    SECOND_FACTOR,
    SECRET,
    Setup,
    error_of,
    give_code,
    id_token_of,
    password_login,
    running,
)

ENROL = "/login/enrol"


async def session_amr(pool: asyncpg.Pool) -> list[list[str]]:
    rows = await pool.fetch("SELECT amr FROM sessions WHERE ended_at IS NULL ORDER BY created_at")
    return [list(row["amr"]) for row in rows]


async def account_sign_in(setup: Setup) -> httpx.Response:
    """A session signed in with the password only, on the account page's own sign-in."""
    page = await setup.http.get("/account/sign-in")
    fields = {**hidden_fields(page.text), "email": EMAIL, "password": PASSWORD}
    signed_in = await setup.http.post("/account/sign-in", data=fields)
    assert signed_in.status_code == 303, signed_in.text
    return signed_in


async def enrolment_page(setup: Setup) -> tuple[str, httpx.Response]:
    """The password posted under required MFA: where it leads (/login/enrol), and that page."""
    after_password = await password_login(setup)
    location: str = after_password.headers["location"]
    return location, await setup.http.get(location)


async def begin_enrolment(setup: Setup, location: str) -> tuple[httpx.Response, str]:
    """Open /login/enrol at ``location`` and ask for a key: the page showing it, and the key."""
    assert location.startswith(f"{ENROL}?request="), location
    page = await setup.http.get(location)
    assert page.status_code == 200, page.text
    assert "Set up an authenticator app" in page.text
    shown = await setup.http.post(ENROL, data=hidden_fields(page.text))
    assert shown.status_code == 200, shown.text
    assert 'class="qr-code"' in shown.text
    key = shown.text.split('<code class="key">')[1].split("</code>")[0].replace(" ", "")
    return shown, key


async def test_required_mfa_leads_a_user_without_a_factor_to_set_one_up_then_signs_in(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    async with running(app_instance, pool, settings, mfa="required") as setup:
        auth = setup.auth()
        after_password = await password_login(setup, auth)
        assert after_password.status_code == 303, after_password.text
        shown, key = await begin_enrolment(setup, after_password.headers["location"])
        code = pyotp.TOTP(key).at(clock.now())
        done = await setup.http.post(
            f"{ENROL}/confirm", data={**hidden_fields(shown.text), "code": code}
        )
        claims = await id_token_of(setup, auth, done)
        assert claims["acr"] == MFA
        assert {"pwd", "otp", "mfa"} <= set(claims["amr"])
        assert await session_amr(pool) == [["pwd", "otp", "mfa"]]  # upgraded in place
        confirmed = await pool.fetchval("SELECT confirmed_at FROM totp_credentials")
        assert confirmed == clock.now()
        actions = await pool.fetch("SELECT action FROM audit_log ORDER BY id")
        assert {"mfa.totp_enrolled", "session.stepped_up"} <= {row["action"] for row in actions}


async def test_a_wrong_code_at_enrolment_shows_the_same_key_and_upgrades_nothing(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    async with running(app_instance, pool, settings, mfa="required") as setup:
        after_password = await password_login(setup)
        shown, key = await begin_enrolment(setup, after_password.headers["location"])
        wrong = f"{(int(pyotp.TOTP(key).at(clock.now())) + 1) % 1_000_000:06d}"
        refused = await setup.http.post(
            f"{ENROL}/confirm", data={**hidden_fields(shown.text), "code": wrong}
        )
        assert refused.status_code == 400, refused.text
        assert 'class="qr-code"' in refused.text
        assert key in refused.text.replace(" ", "")
        assert await session_amr(pool) == [["pwd"]]
        assert await pool.fetchval("SELECT count(*) FROM authorization_codes") == 0


async def test_the_enrolment_page_needs_the_session_the_request_and_the_csrf_token(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with running(app_instance, pool, settings, mfa="required") as setup:
        location, page = await enrolment_page(setup)
        fields = hidden_fields(page.text)
        assert (await setup.http.get(ENROL)).status_code == 400
        assert (await setup.http.get(f"{ENROL}?request=nope")).status_code == 400
        forged = await setup.http.post(ENROL, data={**fields, "csrf_token": "x"})
        assert forged.status_code == 400, forged.text
        unknown = await setup.http.post(ENROL, data={**fields, "request": "nope"})
        assert unknown.status_code == 400, unknown.text
        setup.http.cookies.delete("idp_session")
        assert (await setup.http.get(location)).status_code == 400
        signed_out = await setup.http.post(ENROL, data=fields)
        assert signed_out.status_code == 303  # to the sign-in: nothing changed
        assert await pool.fetchval("SELECT count(*) FROM totp_credentials") == 0


async def test_required_mfa_asks_a_user_with_a_factor_for_it_as_before(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    kek: bytes,
    clock: FrozenClock,
) -> None:
    async with running(app_instance, pool, settings, mfa="required") as setup:
        await enrol_totp(pool, kek, setup.user.id, SECRET, clock.now())
        auth = setup.auth()
        after_password = await password_login(setup, auth)
        assert after_password.headers["location"] == SECOND_FACTOR
        done = await give_code(setup, pyotp.TOTP(SECRET).at(clock.now()))
        assert (await id_token_of(setup, auth, done))["acr"] == MFA


async def test_required_mfa_with_prompt_none_and_a_password_session_is_interaction_required(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with running(app_instance, pool, settings, mfa="required") as setup:
        await password_login(setup)  # a session, password only
        auth = setup.auth()
        answer = await setup.http.get(auth.url(prompt="none"))
        assert error_of(answer, auth) == "interaction_required"
        leads = await setup.http.get(setup.auth().url())
        assert leads.headers["location"].startswith(f"{ENROL}?request=")
        assert await pool.fetchval("SELECT count(*) FROM authorization_codes") == 0


async def test_a_require_mfa_client_and_a_user_without_a_factor_is_unmet(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with running(app_instance, pool, settings, require_mfa=True) as setup:
        auth = setup.auth()
        answer = await password_login(setup, auth)
        assert error_of(answer, auth) == "unmet_authentication_requirements"
        # The browser holds the session it signed in with: the next request is refused too.
        again = setup.auth()
        refused = await setup.http.get(again.url(prompt="none"))
        assert error_of(refused, again) == "unmet_authentication_requirements"
        assert await pool.fetchval("SELECT count(*) FROM authorization_codes") == 0


async def test_a_require_mfa_client_steps_a_password_session_up(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    settings: Settings,
    kek: bytes,
    clock: FrozenClock,
) -> None:
    async with running(app_instance, pool, settings, require_mfa=True) as setup:
        await account_sign_in(setup)
        await enrol_totp(pool, kek, setup.user.id, SECRET, clock.now())
        prompt_none = setup.auth()
        refused = await setup.http.get(prompt_none.url(prompt="none"))
        assert error_of(refused, prompt_none) == "interaction_required"
        auth = setup.auth()
        asked = await setup.http.get(auth.url())
        assert asked.headers["location"] == SECOND_FACTOR
        done = await give_code(setup, pyotp.TOTP(SECRET).at(clock.now()))
        assert (await id_token_of(setup, auth, done))["acr"] == MFA
        assert await session_amr(pool) == [["pwd", "otp", "mfa"]]


async def test_a_require_mfa_client_with_required_mfa_leads_to_enrolment(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with running(app_instance, pool, settings, require_mfa=True, mfa="required") as setup:
        answer = await password_login(setup)
        assert answer.headers["location"].startswith(f"{ENROL}?request="), answer.text


@pytest.mark.parametrize("mfa", ["optional", "required"])
async def test_the_account_sign_in_under_required_mfa_lands_on_the_security_page(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings, mfa: str
) -> None:
    async with running(app_instance, pool, settings, mfa=mfa) as setup:
        signed_in = await account_sign_in(setup)
        expected = "/account/security?done=mfa-required" if mfa == "required" else "/account"
        assert signed_in.headers["location"] == expected


async def test_the_enrolment_page_is_only_for_required_mfa(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with running(app_instance, pool, settings, mfa="required") as setup:
        location, page = await enrolment_page(setup)
        cookies = setup.http.cookies
    async with app_instance() as optional:
        optional.client.cookies.update(cookies)
        assert (await optional.client.get(location)).status_code == 400
        refused = await optional.client.post(ENROL, data=hidden_fields(page.text))
        assert refused.status_code == 400, refused.text
    assert await pool.fetchval("SELECT count(*) FROM totp_credentials") == 0


async def test_required_mfa_lets_a_user_without_a_factor_set_up_a_passkey_instead(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> None:
    """Keycloak's "WebAuthn Register" required action: the enrolment page offers a passkey
    beside the app; the new passkey upgrades the session (password and passkey, RFC 8176) and
    the sign-in ends with acr phr."""
    async with running(app_instance, pool, settings, mfa="required") as setup:
        auth = setup.auth()
        location = (await password_login(setup, auth)).headers["location"]
        page = await setup.http.get(location)
        assert "Add a passkey and continue" in page.text
        key = authenticator()
        answer = key.register(options_of(page.text))
        data = {**hidden_fields(page.text), "credential": json.dumps(answer), "name": "Phone"}
        done = await setup.http.post(f"{ENROL}/passkey", data=data)
        claims = await id_token_of(setup, auth, done)
        assert claims["acr"] == "phr"
        assert claims["amr"] == ["pwd", "hwk", "user", "mfa"]
        assert await session_amr(pool) == [["pwd", "hwk", "user", "mfa"]]  # upgraded in place
        assert await pool.fetchval("SELECT name FROM passkeys") == "Phone"
        replayed = await setup.http.post(f"{ENROL}/passkey", data=data)
        assert replayed.status_code == 400, replayed.text  # the request is done, nothing more
        assert await pool.fetchval("SELECT count(*) FROM passkeys") == 1
