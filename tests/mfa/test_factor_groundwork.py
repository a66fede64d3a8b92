"""The groundwork of second factors: TOTP codes (RFC 6238) matched within one step of drift
and accepted once, the secret sealed to its user, recovery codes kept as HMACs and used once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pyotp
import pytest

from idp.db import second_factors
from idp.mfa import recovery, totp
from idp.mfa.totp import TotpSeal, TotpUnsealError
from tests.factories import make_user

NOW = datetime(2026, 12, 7, 12, 0, 10, tzinfo=UTC)


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def test_a_new_secret_has_160_bits_and_an_otpauth_uri() -> None:
    made = totp.new_secret("alice@example.com", "idp.example")
    assert len(made.secret) == 32  # base32: 5 bits a letter
    assert made.uri.startswith("otpauth://totp/idp.example:alice%40example.com?secret=")
    assert "issuer=idp.example" in made.uri


def test_a_code_matches_its_step_and_one_step_of_drift_either_way() -> None:
    secret = pyotp.random_base32()
    step = totp.step_at(NOW)
    assert totp.matching_step(secret, code_at(secret, NOW), NOW) == step
    assert totp.matching_step(secret, code_at(secret, NOW - timedelta(seconds=30)), NOW) == step - 1
    assert totp.matching_step(secret, code_at(secret, NOW + timedelta(seconds=30)), NOW) == step + 1
    assert totp.matching_step(secret, code_at(secret, NOW - timedelta(seconds=60)), NOW) is None
    assert (
        totp.matching_step(
            secret, " " + code_at(secret, NOW)[:3] + " " + code_at(secret, NOW)[3:], NOW
        )
        == step
    )


@pytest.mark.parametrize(
    "typed", ["", "12345", "1234567", "12345a", "\uff11\uff12\uff13\uff14\uff15\uff16", "\x00" * 6]
)
def test_what_is_not_six_digits_matches_nothing(typed: str) -> None:
    assert totp.matching_step(pyotp.random_base32(), typed, NOW) is None


def test_a_sealed_secret_opens_only_for_its_user_and_key() -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    seal = TotpSeal(b"k" * 32)
    sealed = seal.seal(user, "JBSWY3DPEHPK3PXP")
    assert b"JBSWY3DPEHPK3PXP" not in sealed
    assert seal.unseal(user, sealed) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(TotpUnsealError):
        seal.unseal(other, sealed)
    with pytest.raises(TotpUnsealError):
        TotpSeal(b"j" * 32).unseal(user, sealed)
    with pytest.raises(TotpUnsealError):
        seal.unseal(user, b"short")


async def test_a_step_is_accepted_once_and_never_an_older_one(pool: asyncpg.Pool) -> None:
    """RFC 6238 §5.2: the verifier MUST NOT accept the second attempt of the same OTP."""
    user = await make_user(pool)
    assert await second_factors.begin_totp(pool, user.id, b"sealed", NOW)
    assert not await second_factors.use_totp_step(pool, user.id, 100)  # not confirmed yet
    assert await second_factors.confirm_totp(pool, user.id, 100, NOW)
    assert not await second_factors.use_totp_step(pool, user.id, 100)  # the confirming code
    assert await second_factors.use_totp_step(pool, user.id, 101)
    assert not await second_factors.use_totp_step(pool, user.id, 101)
    assert not await second_factors.use_totp_step(pool, user.id, 99)
    assert not await second_factors.begin_totp(pool, user.id, b"other", NOW)  # confirmed: kept
    assert await second_factors.has_second_factor(pool, user.id)


def test_recovery_codes_are_ten_distinct_60_bit_codes_normalised_when_typed() -> None:
    codes = recovery.new_codes()
    assert len(set(codes)) == recovery.COUNT == 10
    assert all(len(code) == 14 and code.count("-") == 2 for code in codes)
    hasher = recovery.RecoveryHasher(b"k" * 32)
    typed = codes[0].lower().replace("-", " ")
    assert hasher.hash(typed) == hasher.hash(codes[0])
    assert hasher.hash("not a code") is None
    assert recovery.RecoveryHasher(b"j" * 32).hash(codes[0]) != hasher.hash(codes[0])


async def test_a_recovery_code_works_once_and_new_codes_void_the_old(pool: asyncpg.Pool) -> None:
    user = await make_user(pool)
    hasher = recovery.RecoveryHasher(b"k" * 32)
    old = recovery.new_codes()
    hashes = [hasher.hash(code) for code in old]
    await second_factors.replace_recovery_codes(pool, user.id, [h for h in hashes if h], NOW)
    first = hasher.hash(old[0])
    assert first is not None
    assert await second_factors.use_recovery_code(pool, user.id, first, NOW)
    assert not await second_factors.use_recovery_code(pool, user.id, first, NOW)
    assert await second_factors.recovery_counts(pool, user.id) == (9, 10)
    new = [hasher.hash(code) for code in recovery.new_codes()]
    await second_factors.replace_recovery_codes(pool, user.id, [h for h in new if h], NOW)
    second = hasher.hash(old[1])
    assert second is not None
    assert not await second_factors.use_recovery_code(pool, user.id, second, NOW)
    assert await second_factors.recovery_counts(pool, user.id) == (10, 10)
