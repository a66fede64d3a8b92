"""The sign-up rule (idp.accounts.signup), without HTTP: a new address gets an account that must
verify and a verification mail in one transaction; a known one mails its owner instead; both
are rate-limited whatever the address, and the password policy speaks one message per rule."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from idp.accounts import password_policy, signup
from idp.accounts.signup import SignUpForm, SignUpInvalidError
from idp.clock import FrozenClock
from idp.db import users
from idp.mail.compose import Composer
from idp.mail.message import Mail
from idp.mail.outbox import Mailing, Outbox
from idp.passwords import Passwords
from idp.settings import Settings
from tests.factories import make_user, queued_mail

GOOD_PASSWORD = "violet staple orbit lantern"
FORM = SignUpForm("carol@example.com", "Carol", GOOD_PASSWORD, "192.0.2.7")


@pytest.fixture
def open_settings(settings: Settings) -> Settings:
    return replace(settings, registration="open")


@pytest.fixture
def mailing(settings: Settings) -> Mailing:
    assert settings.key_encryption_key is not None
    return Mailing(Outbox(settings.key_encryption_key), Composer(settings))


async def sign_up(
    pool: asyncpg.Pool, mailing: Mailing, settings: Settings, clock: FrozenClock, form: SignUpForm
) -> None:
    await signup.sign_up(pool, Passwords("test"), mailing, settings, form, clock.now())


async def mail(pool: asyncpg.Pool, mailing: Mailing) -> list[Mail]:
    return await queued_mail(pool, mailing.outbox)


async def test_a_new_address_gets_an_account_that_must_verify_and_a_verification_mail(
    pool: asyncpg.Pool, mailing: Mailing, open_settings: Settings, clock: FrozenClock
) -> None:
    await sign_up(pool, mailing, open_settings, clock, FORM)

    user = await users.by_email(pool, "carol@example.com")
    assert user is not None
    assert (user.name, user.must_verify_email, user.email_verified) == ("Carol", True, False)
    assert Passwords("test").verify_sync(user.password_hash, GOOD_PASSWORD).ok
    token = await pool.fetchrow("SELECT purpose, user_id, expires_at FROM mail_tokens")
    assert token is not None
    assert token["purpose"] == "verify_email"
    assert token["user_id"] == user.id
    assert (token["expires_at"] - clock.now()).total_seconds() == 24 * 3600
    [sent] = await mail(pool, mailing)
    assert (sent.to, sent.template) == ("carol@example.com", "verify_email")
    assert "http://idp.test/verify-email?token=" in sent.text
    assert "http://idp.test/verify-email?token=" in sent.html
    audit = await pool.fetch("SELECT action, subject, details::text FROM audit_log")
    assert [(row["action"], row["subject"]) for row in audit] == [("signup.created", str(user.id))]
    assert json.loads(audit[0]["details"]) == {"ip": "192.0.2.7"}
    assert GOOD_PASSWORD not in str([dict(row) for row in audit])


async def test_a_known_address_mails_its_owner_and_creates_nothing(
    pool: asyncpg.Pool, mailing: Mailing, open_settings: Settings, clock: FrozenClock
) -> None:
    owner = await make_user(pool, "Carol@Example.com", name="Carol Owner")

    await sign_up(pool, mailing, open_settings, clock, FORM)

    assert await pool.fetchval("SELECT count(*) FROM users") == 1
    stored = await users.by_id(pool, owner.id)
    assert stored == owner, "the owner's account, password included, is unchanged"
    assert await pool.fetchval("SELECT count(*) FROM mail_tokens") == 0
    [sent] = await mail(pool, mailing)
    assert (sent.to, sent.template) == ("Carol@Example.com", "signup_existing")
    assert "http://idp.test/forgot-password" in sent.text
    assert "Carol Owner" in sent.text
    actions = await pool.fetch("SELECT action, subject FROM audit_log")
    assert [tuple(row) for row in actions] == [("signup.existing_address", str(owner.id))]


async def test_signing_up_again_before_verifying_sends_a_fresh_verification_mail(
    pool: asyncpg.Pool, mailing: Mailing, open_settings: Settings, clock: FrozenClock
) -> None:
    await sign_up(pool, mailing, open_settings, clock, FORM)
    first = await users.by_email(pool, FORM.email)

    await sign_up(pool, mailing, open_settings, clock, replace(FORM, password=GOOD_PASSWORD + "!"))

    assert await users.by_email(pool, FORM.email) == first, "the first password stays"
    assert [m.template for m in await mail(pool, mailing)] == ["verify_email", "verify_email"]
    assert await pool.fetchval("SELECT count(*) FROM mail_tokens WHERE used_at IS NULL") == 2


async def test_nobody_signs_up_while_registration_is_closed(
    pool: asyncpg.Pool, mailing: Mailing, settings: Settings, clock: FrozenClock
) -> None:
    assert settings.registration == "closed"
    with pytest.raises(signup.RegistrationClosedError):
        await sign_up(pool, mailing, settings, clock, FORM)
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


@pytest.mark.parametrize("known", [True, False], ids=["known-address", "unknown-address"])
async def test_sign_ups_for_one_address_are_limited_whether_or_not_it_has_an_account(
    known: bool,
    pool: asyncpg.Pool,
    mailing: Mailing,
    open_settings: Settings,
    clock: FrozenClock,
) -> None:
    if known:
        await make_user(pool, FORM.email)
    for n in range(signup.PER_EMAIL.hits):
        await sign_up(pool, mailing, open_settings, clock, replace(FORM, ip=f"192.0.2.{n}"))

    with pytest.raises(signup.TooManyAttemptsError):
        await sign_up(pool, mailing, open_settings, clock, replace(FORM, ip="198.51.100.1"))
    sent = len(await mail(pool, mailing))
    clock.advance(signup.PER_EMAIL.window)
    await sign_up(pool, mailing, open_settings, clock, FORM)  # a new window
    assert len(await mail(pool, mailing)) == sent + 1


async def test_sign_ups_from_one_address_are_limited(
    pool: asyncpg.Pool, mailing: Mailing, open_settings: Settings, clock: FrozenClock
) -> None:
    for n in range(signup.PER_IP.hits):
        await sign_up(pool, mailing, open_settings, clock, replace(FORM, email=f"u{n}@example.com"))
    with pytest.raises(signup.TooManyAttemptsError):
        await sign_up(pool, mailing, open_settings, clock, replace(FORM, email="new@example.com"))
    assert await users.by_email(pool, "new@example.com") is None


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short one", password_policy.TOO_SHORT.format(minimum=12)),
        ("password1234", password_policy.TOO_COMMON),
        ("my carolcarol secret", password_policy.HAS_EMAIL),
    ],
    ids=["too-short", "common", "contains-local-part"],
)
async def test_a_password_the_policy_rejects_creates_nothing_and_says_why(
    password: str,
    message: str,
    pool: asyncpg.Pool,
    mailing: Mailing,
    open_settings: Settings,
    clock: FrozenClock,
) -> None:
    form = replace(FORM, email="carolcarol@example.com", password=password)
    with pytest.raises(SignUpInvalidError) as rejected:
        await sign_up(pool, mailing, open_settings, clock, form)
    assert rejected.value.problems == {"password": [message]}
    assert await pool.fetchval("SELECT count(*) FROM users") == 0
    assert await mail(pool, mailing) == []


async def test_a_64_character_password_is_accepted(
    pool: asyncpg.Pool, mailing: Mailing, open_settings: Settings, clock: FrozenClock
) -> None:
    password = "a quite long passphrase that keeps going on and on and on, 64 ch"
    assert len(password) == 64
    await sign_up(pool, mailing, open_settings, clock, replace(FORM, password=password))
    user = await users.by_email(pool, FORM.email)
    assert user is not None
    assert Passwords("test").verify_sync(user.password_hash, password).ok


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"email": "not an address"}, {"email"}),
        ({"email": "a" * 250 + "@example.com"}, {"email"}),
        ({"email": "carol\x00@example.com"}, {"email"}),
        ({"name": "Carol\x00"}, {"name"}),
        ({"name": "C" * 201}, {"name"}),
        ({"email": "nobody", "password": "short"}, {"email", "password"}),
    ],
    ids=["not-an-address", "address-too-long", "address-nul", "name-nul", "name-too-long",
         "every-problem-at-once"],
)  # fmt: skip
async def test_fields_that_cannot_be_stored_are_refused_by_field(
    changes: dict[str, Any],
    fields: set[str],
    pool: asyncpg.Pool,
    mailing: Mailing,
    open_settings: Settings,
    clock: FrozenClock,
) -> None:
    with pytest.raises(SignUpInvalidError) as rejected:
        await sign_up(pool, mailing, open_settings, clock, replace(FORM, **changes))
    assert set(rejected.value.problems) == fields
    assert await pool.fetchval("SELECT count(*) FROM users") == 0
