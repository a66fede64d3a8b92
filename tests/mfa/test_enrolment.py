"""The rules of ``/account/security`` without HTTP: an authenticator app set up with a first
code (whose step is then used up), removed only with the current password, and recovery codes
kept as HMACs, shown once, voiding the old ones. Codes come from ``pyotp`` and the secret."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

import asyncpg
import pyotp
import pytest

from idp.accounts.profile import WRONG_CURRENT, ProfileError, Proof
from idp.accounts.services import Services
from idp.clock import FrozenClock
from idp.db import second_factors
from idp.db.users import User
from idp.devices import DeviceCookies
from idp.mail.outbox import Mailing
from idp.mfa import enrolment
from idp.mfa.enrolment import ALREADY_SET_UP, CODE_WRONG, NO_FACTOR, NOT_BEGUN
from idp.mfa.recovery import RecoveryHasher
from idp.mfa.totp import step_at
from idp.passwords import Passwords
from idp.settings import Settings
from tests.factories import PASSWORD, make_user, queued_mail


@pytest.fixture
def services(pool: asyncpg.Pool, settings: Settings) -> Services:
    return Services(pool, Passwords("test"), Mailing.of(settings), settings)


def proof(settings: Settings, password: str = PASSWORD) -> Proof:
    assert settings.key_encryption_key is not None
    return Proof(password, "198.51.100.7", None, DeviceCookies(settings.key_encryption_key))


def code_at(secret: str, now: datetime) -> str:
    return pyotp.TOTP(secret).at(now)


async def enrolled(services: Services, user: User, clock: FrozenClock) -> str:
    """The user with a confirmed app; its secret."""
    setup = await enrolment.begin_totp(services, user, clock.now())
    await enrolment.confirm_totp(services, user, code_at(setup.secret, clock.now()), clock.now())
    return setup.secret


async def actions(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT action FROM audit_log WHERE action LIKE 'mfa.%' ORDER BY id")
    return [row["action"] for row in rows]


async def test_the_secret_is_stored_sealed_and_confirmed_only_by_a_code_of_it(
    services: Services, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    user = await make_user(pool)
    setup = await enrolment.begin_totp(services, user, clock.now())
    assert setup.uri.startswith("otpauth://totp/idp.test:")
    assert "issuer=idp.test" in setup.uri
    sealed = await pool.fetchval("SELECT secret_sealed FROM totp_credentials")
    assert setup.secret.encode() not in sealed
    assert base64.b32decode(setup.secret) not in sealed
    wrong = f"{(int(code_at(setup.secret, clock.now())) + 1) % 1_000_000:06d}"
    with pytest.raises(ProfileError) as refused:
        await enrolment.confirm_totp(services, user, wrong, clock.now())
    assert refused.value.messages == [CODE_WRONG]
    assert (await enrolment.factors_of(services, user)).totp_pending
    await enrolment.confirm_totp(services, user, code_at(setup.secret, clock.now()), clock.now())
    factors = await enrolment.factors_of(services, user)
    assert factors.totp_confirmed_at == clock.now()
    assert not factors.totp_pending
    assert await actions(pool) == ["mfa.totp_begun", "mfa.totp_enrolled"]


async def test_the_confirming_codes_step_is_used_up(
    services: Services, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    """RFC 6238 §5.2: the code that confirmed the app cannot then sign in."""
    user = await make_user(pool)
    await enrolled(services, user, clock)
    step = step_at(clock.now())
    assert await pool.fetchval("SELECT last_step FROM totp_credentials") == step
    assert not await second_factors.use_totp_step(pool, user.id, step)
    assert await second_factors.use_totp_step(pool, user.id, step + 1)


async def test_a_code_of_the_step_before_confirms_but_none_of_two_steps_before(
    services: Services, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    user = await make_user(pool)
    setup = await enrolment.begin_totp(services, user, clock.now())
    old = code_at(setup.secret, clock.now() - timedelta(seconds=60))
    with pytest.raises(ProfileError):
        await enrolment.confirm_totp(services, user, old, clock.now())
    late = code_at(setup.secret, clock.now() - timedelta(seconds=30))
    await enrolment.confirm_totp(services, user, late, clock.now())


async def test_a_second_app_needs_the_first_removed_and_confirming_needs_a_beginning(
    services: Services, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    user = await make_user(pool)
    with pytest.raises(ProfileError) as not_begun:
        await enrolment.confirm_totp(services, user, "123456", clock.now())
    assert not_begun.value.messages == [NOT_BEGUN]
    secret = await enrolled(services, user, clock)
    with pytest.raises(ProfileError) as again:
        await enrolment.begin_totp(services, user, clock.now())
    assert again.value.messages == [ALREADY_SET_UP]
    assert await enrolment.pending_totp(services, user) is None
    with pytest.raises(ProfileError):  # confirmed already: a code confirms nothing more
        await enrolment.confirm_totp(services, user, code_at(secret, clock.now()), clock.now())


async def test_removing_the_app_needs_the_current_password_and_takes_the_codes_with_it(
    services: Services, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    user = await make_user(pool)
    await enrolled(services, user, clock)
    await enrolment.create_recovery_codes(services, user, proof(settings), clock.now())
    with pytest.raises(ProfileError) as refused:
        await enrolment.remove_totp(services, user, proof(settings, "wrong guess"), clock.now())
    assert refused.value.messages == [WRONG_CURRENT]
    assert await second_factors.has_second_factor(pool, user.id)
    failed = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action='login.failed'")
    assert failed == 1, "a wrong password here is a failed sign-in"
    assert await enrolment.remove_totp(services, user, proof(settings), clock.now())
    assert not await second_factors.has_second_factor(pool, user.id)
    assert await pool.fetchval("SELECT count(*) FROM recovery_codes") == 0
    assert not await enrolment.remove_totp(services, user, proof(settings), clock.now())


async def test_recovery_codes_are_ten_distinct_kept_as_hmacs_and_new_ones_void_the_old(
    services: Services, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    user = await make_user(pool)
    await enrolled(services, user, clock)
    first = await enrolment.create_recovery_codes(services, user, proof(settings), clock.now())
    assert len(first) == len(set(first)) == 10
    stored = {row["code_hash"] for row in await pool.fetch("SELECT code_hash FROM recovery_codes")}
    assert settings.key_encryption_key is not None
    hasher = RecoveryHasher(settings.key_encryption_key)
    assert stored == {hasher.hash(code) for code in first}
    assert not any(code.replace("-", "").encode() in h for code in first for h in stored)
    second = await enrolment.create_recovery_codes(services, user, proof(settings), clock.now())
    assert not set(first) & set(second)
    old, new = hasher.hash(first[0]), hasher.hash(second[0])
    assert old is not None
    assert new is not None
    assert not await second_factors.use_recovery_code(pool, user.id, old, clock.now())
    assert await second_factors.use_recovery_code(pool, user.id, new, clock.now())
    assert (await enrolment.factors_of(services, user)).recovery_unused == 9
    events = await pool.fetch(
        "SELECT details::text AS details FROM audit_log WHERE action LIKE 'mfa.recovery%'"
    )
    assert len(events) == 2
    assert not any(code in row["details"] for code in first + second for row in events)


async def test_recovery_codes_need_a_confirmed_app_and_the_current_password(
    services: Services, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    user = await make_user(pool)
    with pytest.raises(ProfileError) as no_factor:
        await enrolment.create_recovery_codes(services, user, proof(settings), clock.now())
    assert no_factor.value.messages == [NO_FACTOR]
    await enrolled(services, user, clock)
    with pytest.raises(ProfileError) as wrong:
        await enrolment.create_recovery_codes(services, user, proof(settings, "x"), clock.now())
    assert wrong.value.messages == [WRONG_CURRENT]
    assert await pool.fetchval("SELECT count(*) FROM recovery_codes") == 0


async def test_each_change_mails_the_owner_a_notice(
    services: Services, pool: asyncpg.Pool, settings: Settings, clock: FrozenClock
) -> None:
    user = await make_user(pool)
    await enrolled(services, user, clock)
    codes = await enrolment.create_recovery_codes(services, user, proof(settings), clock.now())
    await enrolment.remove_totp(services, user, proof(settings), clock.now())
    mails = await queued_mail(pool, services.mailing.outbox)
    assert [(mail.to, mail.template) for mail in mails] == [(user.email, "mfa_changed")] * 3
    assert [mail.text.split("\n")[2] for mail in mails] == [
        f"{what} your account {user.email} at {settings.issuer}."
        for what in (enrolment.ADDED, enrolment.CODES_CREATED, enrolment.REMOVED)
    ]
    assert mails[0].subject == "Your sign-in protection changed"
    assert not any(code in mail.text or code in mail.html for code in codes for mail in mails)


async def test_a_code_in_digits_of_another_script_is_a_wrong_code(
    services: Services, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    """``\\d`` matched them, and ``hmac.compare_digest`` raised on the non-ASCII text."""
    user = await make_user(pool)
    setup = await enrolment.begin_totp(services, user, clock.now())
    arabic = code_at(setup.secret, clock.now()).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    with pytest.raises(ProfileError) as refused:
        await enrolment.confirm_totp(services, user, arabic, clock.now())
    assert refused.value.messages == [CODE_WRONG]
