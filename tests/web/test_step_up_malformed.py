"""Hostile and malformed input to the step-up (OIDC Core §3.1.2.1 ``acr_values``, then the code
alone on ``/login/second-factor`` for a session signed in with the password only): never a 500
nor a traceback, a spec-shaped redirect error (RFC 6749 §4.1.2.1) or a clear 4xx page, and the
session left as it was (its ``amr`` still the password's). The rows already in
tests/mfa/test_step_up.py (5000 characters, NUL, newline, é, %FF, a value repeated) and the
sign-in's table in tests/mfa/test_second_factor_signin.py are not repeated. The driver and its
language: ``tests/web/malformed.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import httpx
import pyotp
import pytest

from idp.clock import FrozenClock
from idp.db.users import User
from idp.oauth.pkce import s256
from idp.settings import Settings
from tests.conftest import InstanceFactory
from tests.factories import enrol_totp, make_user
from tests.oauth.flow import hidden_fields, query_of
from tests.signin_flow import (
    EMAIL,
    MFA,
    REDIRECT,
    SECOND_FACTOR,
    SECRET,
    first_party_client,
    post_password,
)
from tests.web.malformed import (
    ANY,
    FORM,
    Case,
    Context,
    Endpoint,
    Page,
    Redirect,
    run,
    sign_out,
    wait,
)

PENDING_COOKIE = "idp_second_factor"


@dataclass
class StepUp(Context):
    """A browser whose session signed in with the password only, its user having set up an
    authenticator app since; a second browser of the same user, signed in the same way."""

    other: httpx.AsyncClient
    pool: asyncpg.Pool
    kek: bytes
    user: User
    client_id: str

    async def value(self, name: str) -> str:
        assert name == "code"
        return pyotp.TOTP(SECRET).at(self.clock.now())

    def request(self, **extra: str) -> dict[str, str]:
        """An authorization request of the first-party client (PKCE, a fresh state)."""
        return {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid email",
            "state": "s-" + self.clock.now().isoformat(),
            "nonce": "n",
            "code_challenge": s256("v" * 43),
            "code_challenge_method": "S256",
            **extra,
        }


async def password_session(ctx: StepUp, http: httpx.AsyncClient) -> None:
    done = await post_password(http, httpx.URL("/authorize", params=ctx.request()))
    assert done.headers["location"].startswith(REDIRECT), done.text


async def signed_in_with_password(ctx: StepUp) -> dict[str, str]:
    """The password session (before the app was set up, so no code was asked); the rest of an
    authorization request, for ``acr_values`` to be added."""
    await password_session(ctx, ctx.http)
    await enrol_totp(ctx.pool, ctx.kek, ctx.user.id, SECRET, ctx.clock.now())
    return ctx.request()


async def asked_for_the_code(ctx: StepUp, http: httpx.AsyncClient) -> dict[str, str]:
    """A step-up begun in ``http``'s browser: the code form's hidden fields."""
    asked = await http.get("/authorize", params=ctx.request(acr_values=MFA))
    assert asked.headers["location"] == SECOND_FACTOR, asked.text
    page = await http.get(SECOND_FACTOR)
    assert 'name="password"' not in page.text
    return hidden_fields(page.text)


async def stepping_up(ctx: StepUp) -> dict[str, str]:
    await signed_in_with_password(ctx)
    return await asked_for_the_code(ctx, ctx.http)


async def with_another_sessions_step_up(ctx: StepUp) -> dict[str, str]:
    """This browser holds the pending state (and its CSRF token) of a step-up that the user's
    other session began: it names that session, not this one."""
    await password_session(ctx, ctx.other)
    await signed_in_with_password(ctx)
    fields = await asked_for_the_code(ctx, ctx.other)
    ctx.http.cookies.set(PENDING_COOKIE, ctx.other.cookies[PENDING_COOKIE], domain="idp.test")
    return fields


def forget_pending(ctx: Context) -> None:
    ctx.http.cookies.delete(PENDING_COOKIE)


def forge_pending(ctx: Context) -> None:
    ctx.http.cookies.set(PENDING_COOKIE, "forged.state", domain="idp.test")


AUTHORIZE = Endpoint[StepUp](
    "GET", "/authorize", {"acr_values": MFA}, prepare=signed_in_with_password
)
CODE = Endpoint[StepUp]("POST", SECOND_FACTOR, {"code": "{code}"}, None, FORM, stepping_up)
FOREIGN = Endpoint[StepUp](
    "POST", SECOND_FACTOR, {"code": "{code}"}, None, FORM, with_another_sessions_step_up
)
ASKED = Redirect(SECOND_FACTOR, {})
INVALID = Redirect(REDIRECT, {"error": "invalid_request", "state": ANY, "iss": ANY})
CODE_ISSUED = Redirect(REDIRECT, {"code": ANY, "state": ANY, "iss": ANY})
WRONG = Page(401, ("not valid",))
EXPIRED = Page(400, ("expired",))
# The rows after which the session has the second factor: the controls.
UPGRADED = {"authorize-mfa-then-code", "code-right"}
# fmt: off
CASES = [
    AUTHORIZE("authorize-mfa", ASKED),
    AUTHORIZE("authorize-acr-values-512-characters", CODE_ISSUED, acr_values="a" * 512),
    AUTHORIZE("authorize-acr-values-513-characters", INVALID, acr_values="a" * 513),
    AUTHORIZE("authorize-acr-values-mfa-padded-past-512", INVALID, acr_values=MFA + " " * 500),
    AUTHORIZE("authorize-acr-values-tab", INVALID, acr_values=f"urn:x\t{MFA}"),
    AUTHORIZE("authorize-acr-values-del", INVALID, acr_values=f"{MFA}\x7f"),
    AUTHORIZE("authorize-acr-values-escape", INVALID, acr_values=f"\x1b[31m{MFA}"),
    AUTHORIZE("authorize-acr-values-zero-width-space", INVALID, acr_values=f"{MFA}\u200b"),
    AUTHORIZE("authorize-acr-values-nbsp", INVALID, acr_values=f"urn:x\u00a0{MFA}"),
    AUTHORIZE("authorize-acr-values-repeated-differing", INVALID, acr_values=[MFA, "urn:x"]),
    # RFC 6749 §3.1: a parameter sent without a value is treated as omitted; so is its repeat.
    AUTHORIZE("authorize-acr-values-repeated-one-empty", ASKED, acr_values=[MFA, ""]),
    AUTHORIZE("authorize-acr-values-empty", CODE_ISSUED, acr_values=""),
    AUTHORIZE("authorize-acr-values-spaces-only", CODE_ISSUED, acr_values="   "),
    AUTHORIZE("authorize-acr-values-case-changed", CODE_ISSUED, acr_values=MFA.upper()),
    CODE("code-right", CODE_ISSUED),
    CODE("code-seven-digits", WRONG, code="{code}0"),
    CODE("code-1mb", Page(400), code="1" * 1_000_000),
    CODE("code-non-utf8-body", Page(400), raw=b"x=\xff\xfe"),
    CODE("code-non-utf8-code", Page(400), code=None, raw=b"code=\xff\xfe\xfd"),
    CODE("code-no-csrf-token", Page(400), csrf_token=None),
    CODE("code-without-pending", EXPIRED, steps=[forget_pending]),
    CODE("code-forged-pending", Page(400), steps=[forge_pending]),
    CODE("code-pending-expired", EXPIRED, steps=[wait(timedelta(minutes=6))]),
    CODE("code-session-gone", EXPIRED, steps=[sign_out]),
    FOREIGN("code-pending-of-another-session", EXPIRED),
]
# fmt: on


async def sessions_of(pool: asyncpg.Pool) -> list[tuple[list[str], bool]]:
    rows = await pool.fetch(
        "SELECT amr, mfa_at FROM sessions WHERE ended_at IS NULL ORDER BY created_at"
    )
    return [(list(row["amr"]), row["mfa_at"] is not None) for row in rows]


@pytest.mark.parametrize("case", CASES)
async def test_hostile_input_to_the_step_up_is_refused_and_changes_no_session(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    kek: bytes,
    clock: FrozenClock,
    case: Case[StepUp],
    settings: Settings,
    request: pytest.FixtureRequest,
) -> None:
    client, _ = await first_party_client(pool, settings)
    user = await make_user(pool, EMAIL)
    async with app_instance() as app, app_instance() as other:
        ctx = StepUp(app.client, clock, other.client, pool, kek, user, client.client_id)
        answer = await run(ctx, case)
        name = request.node.callspec.id
        if name == "authorize-mfa":  # the control of the authorize rows: the code then works
            code = await ctx.value("code")
            page = await ctx.http.get(SECOND_FACTOR)
            answer = await ctx.http.post(
                SECOND_FACTOR, data={**hidden_fields(page.text), "code": code}
            )
            assert query_of(answer.headers["location"])["code"], answer.text
            name = "authorize-mfa-then-code"
    stepped_up = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'session.stepped_up'"
    )
    live = await sessions_of(pool)
    if name in UPGRADED:
        assert stepped_up == 1
        assert (["pwd", "otp", "mfa"], True) in live
    else:
        assert stepped_up == 0, answer.text
        assert live, "the password session must still be there"
        assert all(session == (["pwd"], False) for session in live), live
