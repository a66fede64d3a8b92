"""Hostile and malformed input to ``/account/security`` and its forms: never a 500 nor a
traceback. A post without a session goes to the sign-in; a bad form or CSRF token is a 400 page;
a bad code or password is the page again with why. The table's driver and its language:
``tests/web/malformed.py``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest

from idp.clock import FrozenClock
from tests.conftest import InstanceFactory
from tests.factories import PASSWORD, make_user
from tests.oauth.flow import hidden_fields
from tests.web.malformed import (
    FORM,
    JSON,
    Case,
    Context,
    Endpoint,
    Page,
    Redirect,
    forget_cookies,
    run,
    sign_out,
)

EMAIL = "alice@example.com"
SECURITY = "/account/security"


@dataclass
class Security(Context):
    """A browser on a running app; its user is signed in once a row's ``prepare`` ran."""


async def security_form(ctx: Security) -> dict[str, str]:
    """Signed in at /account/sign-in; the security page's CSRF token."""
    form = await ctx.http.get("/account/sign-in")
    fields = {**hidden_fields(form.text), "email": EMAIL, "password": PASSWORD}
    signed = await ctx.http.post("/account/sign-in", data=fields)
    assert signed.headers["location"] == "/account", signed.text
    page = await ctx.http.get(SECURITY)
    assert page.status_code == 200, page.text
    return {"csrf_token": hidden_fields(page.text)["csrf_token"]}


async def begun(ctx: Security) -> dict[str, str]:
    """Signed in, with an authenticator app's setup begun."""
    fields = await security_form(ctx)
    shown = await ctx.http.post(f"{SECURITY}/totp", data=fields)
    assert shown.status_code == 200, shown.text
    return fields


Prepare = Callable[[Security], Awaitable[dict[str, str]]]


async def signed_in(ctx: Security) -> dict[str, str]:
    await security_form(ctx)
    return {}


def post(path: str, prepare: Prepare = security_form, **fields: str) -> Endpoint[Security]:
    return Endpoint[Security]("POST", path, fields, None, FORM, prepare)


PAGE_GET = Endpoint[Security]("GET", SECURITY, prepare=signed_in)
BEGIN = post(f"{SECURITY}/totp")
CONFIRM = post(f"{SECURITY}/totp/confirm", begun, code="000000")
CONFIRM_UNBEGUN = post(f"{SECURITY}/totp/confirm", code="123456")
REMOVE = post(f"{SECURITY}/totp/remove", password=PASSWORD)
CODES = post(f"{SECURITY}/recovery-codes", password=PASSWORD)
FORMS = {"begin": BEGIN, "confirm": CONFIRM, "remove": REMOVE, "codes": CODES}

PAGE = Page()
TO_SIGN_IN = Redirect("/account/sign-in", {})
WRONG_CODE = Page(400, ("not the one your app shows",))
WRONG_PASSWORD = Page(400, ("not correct",))
NO_APP = Page(409, ("Set up an authenticator app or a passkey first",))


def every_form(name: str, endpoint: Endpoint[Security]) -> list[pytest.ParameterSet]:
    # fmt: off
    return [
        endpoint(f"{name}-without-session", TO_SIGN_IN, steps=[sign_out]),
        endpoint(f"{name}-without-cookies", TO_SIGN_IN, steps=[forget_cookies]),
        endpoint(f"{name}-no-csrf-token", PAGE, csrf_token=None),
        endpoint(f"{name}-forged-csrf-token", PAGE, csrf_token="0" * 64),
        endpoint(f"{name}-non-ascii-csrf-token", PAGE, csrf_token="\u00e9" * 64),
        endpoint(f"{name}-duplicated-csrf-token", PAGE, raw=b"csrf_token=other"),
        endpoint(f"{name}-json", PAGE, as_json=True, content_type=JSON),
        endpoint(f"{name}-no-content-type", PAGE, content_type=None),
        endpoint(f"{name}-invalid-utf8-escape", PAGE, raw=b"x=%ff%fe"),
        endpoint(f"{name}-20kb", PAGE, raw=b"pad=" + b"a" * 20_480),
        endpoint(f"{name}-100-fields", PAGE, raw=b"&".join(b"f%d=1" % n for n in range(100))),
    ]
    # fmt: on


# fmt: off
CASES = [
    PAGE_GET("page-without-session", TO_SIGN_IN, steps=[sign_out]),
    PAGE_GET("page-unknown-done-code", Page(200), done="<script>alert(1)</script>"),
    PAGE_GET("page-done-invalid-utf8", Page(200), raw=b"done=%ff%fe"),
    PAGE_GET("page-query-100kb", Page(200), pad="p" * 100_000),
    *[case for name, endpoint in FORMS.items() for case in every_form(name, endpoint)],
    CONFIRM("confirm-code-missing", WRONG_CODE, code=None),
    CONFIRM("confirm-code-letters", WRONG_CODE, code="abcdef"),
    CONFIRM("confirm-code-nul", WRONG_CODE, code="123\x00456"),
    CONFIRM("confirm-code-10kb", WRONG_CODE, code="1" * 10_240),
    CONFIRM("confirm-code-arabic-digits", WRONG_CODE, code="\u0661\u0662\u0663\u0664\u0665\u0666"),
    CONFIRM("confirm-code-duplicated", PAGE, code=["123456", "654321"]),
    CONFIRM_UNBEGUN("confirm-not-begun", Page(400, ("Set up the authenticator app first",))),
    REMOVE("remove-password-missing", WRONG_PASSWORD, password=None),
    REMOVE("remove-password-nul", WRONG_PASSWORD, password="pass\x00"),
    REMOVE("remove-password-10kb", WRONG_PASSWORD, password="p" * 10_240),
    REMOVE("remove-nothing-set-up", Redirect(SECURITY, {"done": "nothing"})),
    CODES("codes-password-missing", WRONG_PASSWORD, password=None),
    CODES("codes-without-an-app", NO_APP),
    CODES("codes-format-unknown", NO_APP, format="<script>"),
    CODES("codes-format-duplicated", PAGE, format=["text", "html"]),
]
# fmt: on


@pytest.mark.parametrize("case", CASES)
async def test_hostile_input_to_the_security_page_is_refused_without_crashing(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    clock: FrozenClock,
    case: Case[Security],
) -> None:
    await make_user(pool, EMAIL, PASSWORD)
    async with app_instance() as app:
        await run(Security(app.client, clock), case)
