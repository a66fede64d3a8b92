"""Hostile and malformed input to ``/account`` and its forms: never a 500 nor a traceback. A
post without a session goes to the sign-in (nothing changed); a bad form or CSRF token is a 400
page; a well-formed post naming nothing of the user's changes nothing. The table's driver and
its language: ``tests/web/malformed.py``."""

from __future__ import annotations

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


@dataclass
class Account(Context):
    """A browser on a running app; its user is signed in once a row's ``prepare`` ran."""


async def sign_in_form(ctx: Account) -> dict[str, str]:
    """The account sign-in page's hidden fields (and its pre-login cookie)."""
    form = await ctx.http.get("/account/sign-in")
    assert form.status_code == 200, form.text
    return hidden_fields(form.text)


async def account_form(ctx: Account) -> dict[str, str]:
    """Signed in at /account/sign-in; the account page's CSRF token."""
    fields = {**await sign_in_form(ctx), "email": EMAIL, "password": PASSWORD}
    signed = await ctx.http.post("/account/sign-in", data=fields)
    assert signed.headers["location"] == "/account", signed.text
    page = await ctx.http.get("/account")
    assert page.status_code == 200, page.text
    return {"csrf_token": hidden_fields(page.text)["csrf_token"]}


async def signed_in(ctx: Account) -> dict[str, str]:
    await account_form(ctx)
    return {}


def post(path: str, **fields: str) -> Endpoint[Account]:
    return Endpoint[Account]("POST", path, fields, None, FORM, account_form)


ACCOUNT = Endpoint[Account]("GET", "/account", prepare=signed_in)
SIGN_IN_PAGE = Endpoint[Account]("GET", "/account/sign-in")
SIGN_IN = Endpoint[Account](
    "POST", "/account/sign-in", {"email": EMAIL, "password": PASSWORD}, None, FORM, sign_in_form
)
PROFILE = post("/account/profile", name="Alice")
EMAIL_CHANGE = post("/account/email", email="alice@new.example", password=PASSWORD)
PASSWORD_CHANGE = post(
    "/account/password",
    current_password=PASSWORD,
    new_password="a quiet lantern by the sea",
    confirm_password="a quiet lantern by the sea",
)
END = post("/account/sessions/end", sid="no-such-session")
END_OTHERS = post("/account/sessions/end-others")
REVOKE = post("/account/apps/revoke", client_id="no-such-client")
FORMS = {
    "profile": PROFILE, "email": EMAIL_CHANGE, "password": PASSWORD_CHANGE, "end": END,
    "end-others": END_OTHERS, "revoke": REVOKE,
}  # fmt: skip

PAGE = Page()
TO_SIGN_IN = Redirect("/account/sign-in", {})
NOTHING = Redirect("/account", {"done": "nothing"})


def every_form(name: str, endpoint: Endpoint[Account]) -> list[pytest.ParameterSet]:
    """What each form refuses alike: no session, no or a forged CSRF token, a body that is not
    one well-formed form."""
    # fmt: off
    return [
        endpoint(f"{name}-without-session", TO_SIGN_IN, steps=[sign_out]),
        endpoint(f"{name}-without-cookies", TO_SIGN_IN, steps=[forget_cookies]),
        endpoint(f"{name}-no-csrf-token", PAGE, csrf_token=None),
        endpoint(f"{name}-forged-csrf-token", PAGE, csrf_token="0" * 64),
        endpoint(f"{name}-non-ascii-csrf-token", PAGE, csrf_token="\u00e9" * 64),
        endpoint(f"{name}-csrf-token-nul", PAGE, csrf_token="\x00"),
        endpoint(f"{name}-duplicated-csrf-token", PAGE, raw=b"csrf_token=other"),
        endpoint(f"{name}-json", PAGE, as_json=True, content_type=JSON),
        endpoint(f"{name}-no-content-type", PAGE, content_type=None),
        endpoint(f"{name}-multipart", PAGE, content_type="multipart/form-data; boundary=x"),
        endpoint(f"{name}-invalid-utf8-escape", PAGE, raw=b"x=%ff%fe"),
        endpoint(f"{name}-invalid-utf8-raw", PAGE, raw=b"x=\xc3\x28"),
        endpoint(f"{name}-20kb", PAGE, raw=b"pad=" + b"a" * 20_480),
        endpoint(f"{name}-100-fields", PAGE, raw=b"&".join(b"f%d=1" % n for n in range(100))),
    ]
    # fmt: on


# fmt: off
CASES = [
    ACCOUNT("account-without-session", TO_SIGN_IN, steps=[sign_out]),
    ACCOUNT("account-unknown-done-code", Page(200), done="<script>alert(1)</script>"),
    ACCOUNT("account-done-invalid-utf8", Page(200), raw=b"done=%ff%fe"),
    ACCOUNT("account-done-duplicated", Page(200), done=["name", "email"]),
    ACCOUNT("account-query-100kb", Page(200), pad="p" * 100_000),
    SIGN_IN_PAGE("sign-in-page-garbage-query", Page(200), raw=b"next=https://evil.example"),
    SIGN_IN("sign-in-no-csrf-token", PAGE, csrf_token=None),
    SIGN_IN("sign-in-forged-csrf-token", PAGE, csrf_token="0" * 64),
    SIGN_IN("sign-in-without-cookies", PAGE, steps=[forget_cookies]),
    SIGN_IN("sign-in-json", PAGE, as_json=True, content_type=JSON),
    SIGN_IN("sign-in-invalid-utf8", PAGE, raw=b"x=%c3%28"),
    SIGN_IN("sign-in-duplicated-email", PAGE, raw=b"email=mallory%40x"),
    SIGN_IN("sign-in-20kb", PAGE, raw=b"pad=" + b"a" * 20_480),
    SIGN_IN("sign-in-wrong-password", Page(401), password="wrong password"),
    SIGN_IN("sign-in-email-nul", Page(401), email="alice\x00@example.com"),
    SIGN_IN("sign-in-email-10kb", Page(401), email="a" * 10_240 + "@example.com"),
    SIGN_IN("sign-in-with-a-next-url", Redirect("/account", {}), next="https://evil.example"),
    *[case for name, endpoint in FORMS.items() for case in every_form(name, endpoint)],
    PROFILE("profile-name-empty", Redirect("/account", {"done": "name"}), name=""),
    PROFILE("profile-name-10kb", Page(400, ("at most 100",)), name="a" * 10_240),
    PROFILE("profile-name-nul", Page(400, ("printable",)), name="Al\x00ice"),
    PROFILE("profile-name-newline-only", Redirect("/account", {"done": "name"}), name="\n\r\t"),
    PROFILE("profile-name-bidi-override", Page(400, ("printable",)), name="\u202eecilA"),
    PROFILE("profile-name-markup", Redirect("/account", {"done": "name"}),
            name="<script>x</script>"),
    PROFILE("profile-name-duplicated", PAGE, name=["Alice", "Mallory"]),
    EMAIL_CHANGE("email-missing", Page(400, ("Enter an email",)), email=None),
    EMAIL_CHANGE("email-nul", Page(400, ("Enter an email",)), email="a\x00@example.com"),
    EMAIL_CHANGE("email-10kb", Page(400, ("Enter an email",)), email="a" * 10_240 + "@x.org"),
    EMAIL_CHANGE("email-two-ats", Page(400, ("Enter an email",)), email="a@b@example.com"),
    EMAIL_CHANGE("email-with-header-injection", Page(400, ("Enter an email",)),
                 email="a@example.com\r\nBcc: mallory@example.com"),
    EMAIL_CHANGE("email-password-missing", Page(400, ("not correct",)), password=None),
    EMAIL_CHANGE("email-password-nul", Page(400, ("not correct",)), password="pass\x00"),
    EMAIL_CHANGE("email-password-10kb", Page(400, ("not correct",)), password="p" * 10_240),
    EMAIL_CHANGE("email-duplicated", PAGE, email=["a@example.com", "b@example.com"]),
    PASSWORD_CHANGE("password-current-missing", Page(400, ("not correct",)),
                    current_password=None),
    PASSWORD_CHANGE("password-new-missing", Page(400, ("differ",)), new_password=None),
    PASSWORD_CHANGE("password-both-new-missing", Page(400, ("at least",)), new_password=None,
                    confirm_password=None),
    PASSWORD_CHANGE("password-new-5kb", Page(400, ("at most",)), new_password="p" * 5_000,
                    confirm_password="p" * 5_000),
    PASSWORD_CHANGE("password-new-nul", Redirect("/account", {"done": "password"}),
                    new_password="a quiet\x00lantern by the sea",
                    confirm_password="a quiet\x00lantern by the sea"),
    PASSWORD_CHANGE("password-duplicated-new", PAGE, raw=b"new_password=other"),
    END("end-sid-missing", NOTHING, sid=None),
    END("end-sid-nul", NOTHING, sid="abc\x00"),
    END("end-sid-10kb", NOTHING, sid="s" * 10_240),
    END("end-sid-sql", NOTHING, sid="' OR 1=1 --"),
    END("end-sid-duplicated", PAGE, sid=["a", "b"]),
    END_OTHERS("end-others-with-extra-sid", NOTHING, sid="whatever"),
    REVOKE("revoke-client-missing", NOTHING, client_id=None),
    REVOKE("revoke-client-nul", NOTHING, client_id="app\x00"),
    REVOKE("revoke-client-10kb", NOTHING, client_id="c" * 10_240),
    REVOKE("revoke-client-duplicated", PAGE, client_id=["a", "b"]),
]
# fmt: on


@pytest.mark.parametrize("case", CASES)
async def test_hostile_input_to_the_account_page_is_refused_without_crashing(
    app_instance: InstanceFactory,
    pool: asyncpg.Pool,
    clock: FrozenClock,
    case: Case[Account],
) -> None:
    await make_user(pool, EMAIL, PASSWORD)
    async with app_instance() as app:
        await run(Account(app.client, clock), case)
