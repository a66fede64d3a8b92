"""Hostile and malformed input to ``/forgot-password``, ``/reset-password`` and
``/accept-invitation``: never a 500 and never a traceback, always a readable page with the
security headers, never a redirect. The table's driver and its language: ``tests/web/malformed.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import pytest

from idp.accounts import mail_tokens
from idp.clock import FrozenClock
from idp.db import users
from idp.db.users import User
from idp.web.state import AppState
from tests.conftest import InstanceFactory
from tests.factories import make_user
from tests.oauth.flow import hidden_fields
from tests.web.malformed import FORM, JSON, Case, Context, Endpoint, Page, forget_cookies, run, wait

EMAIL = "alice@example.com"
NEW_PASSWORD = "a brand new passphrase"


@dataclass
class Forms(Context):
    """One running app with a user (who may ask for a reset) and an invitee (who has none)."""

    state: AppState
    user: User
    invitee: User

    async def value(self, name: str) -> str:
        """Live mail tokens (``reset_token``, ``invitation_token``, ``verify_token``) and the
        CSRF token another page's form would carry (``forgot_csrf_token``)."""
        now = self.clock.now()
        pool = self.state["pool"]
        match name:
            case "reset_token":
                return await mail_tokens.issue(pool, "reset_password", self.user.id, EMAIL, now)
            case "invitation_token":
                invitee = self.invitee
                return await mail_tokens.issue(pool, "invitation", invitee.id, invitee.email, now)
            case "verify_token":
                return await mail_tokens.issue(pool, "verify_email", self.user.id, EMAIL, now)
            case "forgot_csrf_token":
                return (await forgot_form(self))["csrf_token"]
        raise KeyError(name)


async def page_fields(ctx: Forms, path: str) -> dict[str, str]:
    page = await ctx.http.get(path)
    assert page.status_code == 200, page.text
    return hidden_fields(page.text)


async def forgot_form(ctx: Forms) -> dict[str, str]:
    return await page_fields(ctx, "/forgot-password")


async def reset_form(ctx: Forms) -> dict[str, str]:
    return await page_fields(ctx, f"/reset-password?token={await ctx.value('reset_token')}")


async def invitation_form(ctx: Forms) -> dict[str, str]:
    token = await ctx.value("invitation_token")
    return await page_fields(ctx, f"/accept-invitation?token={token}")


FORGOT_PAGE = Endpoint[Forms]("GET", "/forgot-password")
FORGOT = Endpoint[Forms]("POST", "/forgot-password", {"email": EMAIL}, None, FORM, forgot_form)
RESET_PAGE = Endpoint[Forms]("GET", "/reset-password", {"token": "{reset_token}"})
RESET = Endpoint[Forms](
    "POST", "/reset-password", {"password": NEW_PASSWORD}, None, FORM, reset_form
)
INVITATION_PAGE = Endpoint[Forms]("GET", "/accept-invitation", {"token": "{invitation_token}"})
INVITATION = Endpoint[Forms](
    "POST", "/accept-invitation", {"password": NEW_PASSWORD}, None, FORM, invitation_form
)

OK = Page(200)
BAD = Page(400)
FORGED = Page(400, ("This form has expired",))
INVALID_FORM = Page(400, ("Invalid form",))
LINK = Page(400, ("This link no longer works",))
INVITATION_LINK = Page(400, ("This invitation no longer works",))
REJECTED = Page(400, ("Use at least", "Use at most", "most common", "email address"))

# fmt: off
FORGOT_CASES = [
    FORGOT_PAGE("forgot-get", OK),
    FORGOT_PAGE("forgot-get-garbage-request-id", OK, request="garbage"),
    FORGOT_PAGE("forgot-get-request-id-invalid-utf8", OK, raw=b"request=%ff%c3%28"),
    FORGOT_PAGE("forgot-get-request-id-nul", OK, raw=b"request=%00"),
    FORGOT_PAGE("forgot-get-request-id-10kb", OK, request="r" * 10_240),
    FORGOT("forgot-post", OK),
    FORGOT("forgot-post-no-csrf-token", FORGED, csrf_token=None),
    FORGOT("forgot-post-forged-csrf-token", FORGED, csrf_token="0" * 64),
    FORGOT("forgot-post-non-ascii-csrf-token", FORGED, csrf_token="\u00e9" * 64),
    FORGOT("forgot-post-csrf-token-without-cookie", FORGED, steps=[forget_cookies]),
    FORGOT("forgot-post-json", INVALID_FORM, as_json=True, content_type=JSON),
    FORGOT("forgot-post-no-content-type", INVALID_FORM, content_type=None),
    FORGOT("forgot-post-invalid-utf8-escape", INVALID_FORM, raw=b"x=%ff%fe"),
    FORGOT("forgot-post-invalid-utf8-raw", INVALID_FORM, raw=b"x=\xc3\x28"),
    FORGOT("forgot-post-email-invalid-utf8", INVALID_FORM, email=None, raw=b"email=a%ff@x.example"),
    FORGOT("forgot-post-duplicated-email", INVALID_FORM, raw=b"email=mallory%40x.example"),
    FORGOT("forgot-post-duplicated-csrf-token", INVALID_FORM, raw=b"csrf_token=00"),
    FORGOT("forgot-post-20kb", INVALID_FORM, raw=b"pad=" + b"a" * 20_480),
    FORGOT("forgot-post-no-email", BAD, email=None),
    FORGOT("forgot-post-email-10kb", BAD, email="a" * 10_240 + "@example.com"),
    FORGOT("forgot-post-email-nul", BAD, email="alice\x00@example.com"),
    FORGOT("forgot-post-email-newline", BAD, email="alice@example.com\nBcc: x@evil.example"),
    FORGOT("forgot-post-email-markup", BAD, email="<script>alert(1)</script>"),
    FORGOT("forgot-post-garbage-request-id", OK, request="garbage"),
    FORGOT("forgot-post-request-id-10kb", OK, request="r" * 10_240),
]

RESET_CASES = [
    RESET_PAGE("reset-get", OK),
    RESET_PAGE("reset-get-no-token", LINK, token=None),
    RESET_PAGE("reset-get-garbage-token", LINK, token="garbage"),
    RESET_PAGE("reset-get-token-invalid-utf8", LINK, token=None, raw=b"token=%ff%c3%28"),
    RESET_PAGE("reset-get-token-nul", LINK, token="{reset_token}\x00"),
    RESET_PAGE("reset-get-token-10kb", LINK, token="t" * 10_240),
    RESET_PAGE("reset-get-token-extended", LINK, token="{reset_token}x"),
    RESET_PAGE("reset-get-invitation-token", LINK, token="{invitation_token}"),
    RESET_PAGE("reset-get-verification-token", LINK, token="{verify_token}"),
    RESET_PAGE("reset-get-expired-token", LINK, steps=[wait(timedelta(minutes=31))]),
    RESET("reset-post", OK),
    RESET("reset-post-no-csrf-token", FORGED, csrf_token=None),
    RESET("reset-post-forged-csrf-token", FORGED, csrf_token="0" * 64),
    RESET("reset-post-non-ascii-csrf-token", FORGED, csrf_token="\u00e9"),
    RESET("reset-post-csrf-token-without-cookie", FORGED, steps=[forget_cookies]),
    RESET("reset-post-csrf-token-of-another-form", FORGED, csrf_token="{forgot_csrf_token}"),
    RESET("reset-post-json", INVALID_FORM, as_json=True, content_type=JSON),
    RESET("reset-post-no-content-type", INVALID_FORM, content_type=None),
    RESET("reset-post-invalid-utf8", INVALID_FORM, raw=b"x=%c3%28"),
    RESET("reset-post-password-invalid-utf8", INVALID_FORM, password=None, raw=b"password=%ff"),
    RESET("reset-post-duplicated-token", INVALID_FORM, raw=b"token=other"),
    RESET("reset-post-duplicated-password", INVALID_FORM, raw=b"password=another"),
    RESET("reset-post-20kb", INVALID_FORM, raw=b"pad=" + b"a" * 20_480),
    RESET("reset-post-no-token", LINK, token=None),
    RESET("reset-post-garbage-token", LINK, token="garbage"),
    RESET("reset-post-token-nul", LINK, token="a\x00" * 30),
    RESET("reset-post-invitation-token", LINK, token="{invitation_token}"),
    RESET("reset-post-expired-token", LINK, steps=[wait(timedelta(minutes=31))]),
    RESET("reset-post-no-password", REJECTED, password=None),
    RESET("reset-post-password-too-long", REJECTED, password="p" * 300),
    RESET("reset-post-password-common", REJECTED, password="password1234"),
    RESET("reset-post-password-with-nul", OK, password="a brand\x00new passphrase"),
    RESET("reset-post-password-10kb", REJECTED, password="p" * 10_240),
]

INVITATION_CASES = [
    INVITATION_PAGE("invitation-get", OK),
    INVITATION_PAGE("invitation-get-no-token", INVITATION_LINK, token=None),
    INVITATION_PAGE("invitation-get-garbage-token", INVITATION_LINK, token="garbage"),
    INVITATION_PAGE("invitation-get-token-invalid-utf8", INVITATION_LINK, token=None,
                    raw=b"token=%ff"),
    INVITATION_PAGE("invitation-get-token-10kb", INVITATION_LINK, token="t" * 10_240),
    INVITATION_PAGE("invitation-get-reset-token", INVITATION_LINK, token="{reset_token}"),
    INVITATION_PAGE("invitation-get-expired-token", INVITATION_LINK,
                    steps=[wait(timedelta(hours=73))]),
    INVITATION("invitation-post", OK),
    INVITATION("invitation-post-with-name", OK, name="Zoë O'Brien <b>"),
    INVITATION("invitation-post-no-csrf-token", FORGED, csrf_token=None),
    INVITATION("invitation-post-forged-csrf-token", FORGED, csrf_token="0" * 64),
    INVITATION("invitation-post-csrf-token-without-cookie", FORGED, steps=[forget_cookies]),
    INVITATION("invitation-post-csrf-token-of-another-form", FORGED,
               csrf_token="{forgot_csrf_token}"),
    INVITATION("invitation-post-json", INVALID_FORM, as_json=True, content_type=JSON),
    INVITATION("invitation-post-invalid-utf8", INVALID_FORM, raw=b"x=%c3%28"),
    INVITATION("invitation-post-name-invalid-utf8", INVALID_FORM, raw=b"name=%ff"),
    INVITATION("invitation-post-duplicated-name", INVALID_FORM, name=["a", "b"]),
    INVITATION("invitation-post-20kb", INVALID_FORM, raw=b"pad=" + b"a" * 20_480),
    INVITATION("invitation-post-no-token", INVITATION_LINK, token=None),
    INVITATION("invitation-post-reset-token", INVITATION_LINK, token="{reset_token}"),
    INVITATION("invitation-post-expired-token", INVITATION_LINK,
               steps=[wait(timedelta(hours=73))]),
    INVITATION("invitation-post-name-10kb", Page(400, ("at most 200 characters",)),
               name="n" * 10_240),
    INVITATION("invitation-post-name-nul", Page(400, ("control characters",)), name="Bob\x00"),
    INVITATION("invitation-post-name-escape", Page(400, ("control characters",)),
               name="\x1b[31mBob"),
    INVITATION("invitation-post-no-password", REJECTED, password=None),
    INVITATION("invitation-post-password-common", REJECTED, password="password1234"),
]
# fmt: on


@pytest.mark.parametrize("case", FORGOT_CASES + RESET_CASES + INVITATION_CASES)
async def test_hostile_input_to_reset_and_invitation_forms_is_refused_without_crashing(
    app_instance: InstanceFactory, pool: asyncpg.Pool, clock: FrozenClock, case: Case[Forms]
) -> None:
    user = await make_user(pool, EMAIL)
    invitee = await users.insert(
        pool, email="bob@example.com", name="Bob", password_hash=None, roles=[], now=clock.now()
    )
    async with app_instance() as app:
        ctx = Forms(app.client, clock, app.state, user, invitee)
        response = await run(ctx, case)
        await app.state["background"].drain()

    if response.status_code >= 400:  # nothing was set
        assert (
            await pool.fetchval("SELECT count(*) FROM mail_tokens WHERE used_at IS NOT NULL") == 0
        )
        assert await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id) == (
            user.password_hash
        )
