"""An essential ``acr`` in the claims parameter (OIDC Core §5.5, §5.5.1.1): the sign-in must
reach one of its values, by a step-up when the user can, else the answer is
``unmet_authentication_requirements`` (OpenID Connect Core Unmet Authentication Requirements
1.0); prompt=none gets ``interaction_required`` for a step-up it cannot show (§3.1.2.6). And a
request with ``max_age`` exceeded and ``acr_values`` asks for the password and the code once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import pyotp
import pytest

from idp.clock import FrozenClock
from idp.db import second_factors
from idp.db.second_factors import FactorKinds
from idp.oauth.authorize import AuthorizationRequest
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import PASSWORD, enrol_totp
from tests.oauth.flow import hidden_fields, query_of
from tests.signin_flow import (
    MFA,
    PWD,
    REDIRECT,
    SECOND_FACTOR,
    SECRET,
    Setup,
    error_of,
    essential,
    give_code,
    id_token_of,
    password_login,
    password_session,
    running,
)
from tests.web.malformed import Context, Endpoint, Redirect, run


@pytest.fixture
async def setup(
    app_instance: InstanceFactory, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[Setup]:
    async with running(app_instance, pool, settings) as running_setup:
        yield running_setup


async def codes_issued(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM authorization_codes"))


@pytest.mark.parametrize("key", ["values", "value"])
async def test_an_essential_mfa_steps_a_password_session_up_and_the_acr_is_that_value(
    setup: Setup, pool: asyncpg.Pool, kek: bytes, clock: FrozenClock, key: str
) -> None:
    await password_session(setup)
    await enrol_totp(pool, kek, setup.user.id, SECRET, clock.now())
    auth = setup.auth()
    asked = await setup.http.get(auth.url(claims=essential(MFA, key=key)))
    assert asked.status_code == 303, asked.text
    assert asked.headers["location"] == SECOND_FACTOR
    done = await give_code(setup, pyotp.TOTP(SECRET).at(clock.now()))
    assert (await id_token_of(setup, auth, done))["acr"] == MFA


async def test_an_essential_mfa_the_user_cannot_reach_is_unmet_authentication_requirements(
    setup: Setup, pool: asyncpg.Pool
) -> None:
    await password_session(setup)
    for prompt in ({}, {"prompt": "none"}):
        auth = setup.auth()
        answer = await setup.http.get(auth.url(claims=essential(MFA), **prompt))
        assert error_of(answer, auth) == "unmet_authentication_requirements"
    assert await codes_issued(pool) == 1  # the first sign-in's only


async def test_a_fresh_sign_in_with_an_unreachable_essential_acr_gets_the_error_not_a_code(
    setup: Setup, pool: asyncpg.Pool
) -> None:
    auth = setup.auth()
    answer = await password_login(setup, auth, claims=essential(MFA))
    assert error_of(answer, auth) == "unmet_authentication_requirements"
    assert await codes_issued(pool) == 0
    # The person did sign in: the browser holds the session, none is left orphaned.
    assert "idp_session=" in answer.headers.get("set-cookie", "")
    held = await setup.http.get("/account", follow_redirects=False)
    assert held.status_code == 200


async def test_an_essential_acr_idp_does_not_know_is_never_met(setup: Setup) -> None:
    await password_session(setup)
    auth = setup.auth()
    answer = await setup.http.get(auth.url(claims=essential("urn:other:gold")))
    assert error_of(answer, auth) == "unmet_authentication_requirements"


async def test_prompt_none_with_a_reachable_unmet_essential_acr_is_interaction_required(
    setup: Setup, pool: asyncpg.Pool, kek: bytes, clock: FrozenClock
) -> None:
    await password_session(setup)
    await enrol_totp(pool, kek, setup.user.id, SECRET, clock.now())
    auth = setup.auth()
    answer = await setup.http.get(auth.url(claims=essential(MFA), prompt="none"))
    assert error_of(answer, auth) == "interaction_required"
    assert await codes_issued(pool) == 1


async def test_an_essential_acr_the_session_meets_gives_a_code_without_reading_factors(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    await password_session(setup)
    reads: list[object] = []
    original = second_factors.factor_kinds

    async def counted(*args: object) -> FactorKinds:
        reads.append(args)
        return await original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(second_factors, "factor_kinds", counted)
    auth = setup.auth()
    answer = await setup.http.get(auth.url(claims=essential(PWD, MFA), prompt="none"))
    assert (await id_token_of(setup, auth, answer))["acr"] == PWD
    assert reads == []
    unmet = setup.auth()
    await setup.http.get(unmet.url(claims=essential(MFA), prompt="none"))
    assert len(reads) == 1  # read once the session falls short


async def test_a_voluntary_acr_and_other_claims_are_accepted_and_change_nothing(
    setup: Setup,
) -> None:
    await password_session(setup)
    claims = {
        "id_token": {"acr": {"values": [MFA]}, "auth_time": {"essential": True}, "email": None},
        "userinfo": {"name": {"essential": True}, "acr": {"essential": True, "values": [MFA]}},
    }
    auth = setup.auth()
    answer = await setup.http.get(auth.url(claims=json.dumps(claims), prompt="none"))
    assert (await id_token_of(setup, auth, answer))["acr"] == PWD


async def test_discovery_says_the_claims_parameter_is_supported(setup: Setup) -> None:
    answer = await setup.http.get("/.well-known/openid-configuration")
    assert answer.json()["claims_parameter_supported"] is True


async def test_a_request_parked_before_essential_acr_existed_still_resumes(setup: Setup) -> None:
    client = await setup.app.state["clients"].find(setup.client_id)
    assert client is not None
    parked = AuthorizationRequest(client=client, redirect_uri=REDIRECT, essential_acr=[MFA])
    data = parked.to_json()
    assert AuthorizationRequest.from_json(data, client).essential_acr == [MFA]
    del data["essential_acr"]
    assert AuthorizationRequest.from_json(data, client).essential_acr is None


async def test_max_age_exceeded_with_acr_values_asks_the_password_and_the_code_once(
    setup: Setup, pool: asyncpg.Pool, kek: bytes, clock: FrozenClock
) -> None:
    await password_session(setup)
    await enrol_totp(pool, kek, setup.user.id, SECRET, clock.now())
    clock.advance(timedelta(minutes=10))
    auth = setup.auth()
    steps: list[str] = []
    answer = await setup.http.get(auth.url(max_age="60", acr_values=MFA))
    location = answer.headers["location"]
    while not location.startswith(REDIRECT):
        steps.append(location.split("?")[0])
        assert len(steps) < 5, steps
        page = await setup.http.get(location)
        assert page.status_code == 200, page.text
        fields = hidden_fields(page.text)
        if location.startswith("/login?"):
            fields |= {"email": setup.user.email, "password": PASSWORD}
        else:
            fields |= {"code": pyotp.TOTP(SECRET).at(clock.now())}
        answer = await setup.http.post(location.split("?")[0], data=fields)
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
    assert steps == ["/login", SECOND_FACTOR]
    claims = await id_token_of(setup, auth, answer)
    assert claims["acr"] == MFA
    assert claims["auth_time"] == int(clock.now().timestamp())


# -- hostile claims values, through the driver of tests/web/malformed.py ------------------------
@dataclass
class Requests(Context):
    setup: Setup
    state: str = ""

    async def value(self, name: str) -> str:
        if name == "issuer":
            return self.setup.app.state["settings"].issuer
        assert name == "state"
        return self.state


async def valid_request(ctx: Requests) -> dict[str, str]:
    auth = ctx.setup.auth()
    ctx.state = auth.state
    return query_of(auth.url())


AUTHORIZE = Endpoint[Requests]("GET", "/authorize", prepare=valid_request)
BAD = Redirect(REDIRECT, {"error": "invalid_request", "iss": "{issuer}", "state": "{state}"})
UNMET = Redirect(
    REDIRECT, {"error": "unmet_authentication_requirements", "iss": "{issuer}", "state": "{state}"}
)
ACR = {"essential": True, "values": [MFA]}


def claims(value: object) -> str:
    return json.dumps(value)


# fmt: off
CASES = [
    AUTHORIZE("not-json", BAD, claims="{id_token:"),
    AUTHORIZE("an-array", BAD, claims=claims([{"id_token": {"acr": ACR}}])),
    AUTHORIZE("a-string", BAD, claims=claims("id_token")),
    AUTHORIZE("huge", BAD, claims=claims({"id_token": {"acr": ACR}, "x": "y" * 5000})),
    AUTHORIZE("deeply-nested", BAD, claims="[" * 2000 + "]" * 2000),
    AUTHORIZE("invalid-utf8", BAD, claims=None, raw=b"claims=%7B%22x%22%3A%22%FF%22%7D"),
    AUTHORIZE("repeated", BAD, claims=[claims({}), claims({})]),
    AUTHORIZE("id-token-an-array", BAD, claims=claims({"id_token": [ACR]})),
    AUTHORIZE("acr-a-string", BAD, claims=claims({"id_token": {"acr": MFA}})),
    AUTHORIZE("values-not-a-list", BAD,
              claims=claims({"id_token": {"acr": {"essential": True, "values": MFA}}})),
    AUTHORIZE("values-empty", BAD,
              claims=claims({"id_token": {"acr": {"essential": True, "values": []}}})),
    AUTHORIZE("values-of-numbers", BAD,
              claims=claims({"id_token": {"acr": {"essential": True, "values": [1, 2]}}})),
    AUTHORIZE("values-with-a-nul", BAD,
              claims=claims({"id_token": {"acr": {"essential": True, "values": [MFA + "\0"]}}})),
    AUTHORIZE("value-an-object", BAD,
              claims=claims({"id_token": {"acr": {"essential": True, "value": {"v": MFA}}}})),
    AUTHORIZE("essential-a-string", BAD,
              claims=claims({"id_token": {"acr": {"essential": "true", "values": [MFA]}}})),
    AUTHORIZE("essential-a-number", BAD,
              claims=claims({"id_token": {"acr": {"essential": 1, "values": [MFA]}}})),
    AUTHORIZE("unknown-value", UNMET,
              claims=claims({"id_token": {"acr": {"essential": True, "value": "gold"}}})),
]
# fmt: on


@pytest.mark.parametrize("case", CASES)
async def test_hostile_claims_are_a_clear_error_never_a_500(
    setup: Setup, clock: FrozenClock, pool: asyncpg.Pool, case: object
) -> None:
    await password_session(setup)
    await run(Requests(setup.http, clock, setup), case)  # type: ignore[arg-type]
    assert await codes_issued(pool) == 1
