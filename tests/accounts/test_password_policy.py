"""The password policy (NIST SP 800-63B §3.1.1.2): length, the common-password list, the email's
own name; no composition rules; one message per rule."""

from __future__ import annotations

import pytest

from idp.accounts.password_policy import (
    HAS_EMAIL,
    MAX_LENGTH,
    TOO_COMMON,
    TOO_LONG,
    TOO_SHORT,
    common_passwords,
    problems,
)

EMAIL = "alice.liddell@example.com"


def check(password: str, min_length: int = 12) -> list[str]:
    return problems(password, email=EMAIL, min_length=min_length)


def test_a_long_unusual_password_without_any_symbol_or_digit_is_accepted() -> None:
    assert check("correct horse battery staple") == []  # no composition rules (§3.1.1.2)


def test_a_password_shorter_than_the_minimum_is_refused_with_the_minimum_named() -> None:
    assert check("bluebird7x", min_length=12) == [TOO_SHORT.format(minimum=12)]
    assert check("bluebird7x", min_length=8) == []


def test_sixty_four_characters_and_more_are_allowed_up_to_the_bound() -> None:
    assert check("q" * 63 + "z") == []
    assert check("kz" * (MAX_LENGTH // 2)) == []
    assert check("kz" * (MAX_LENGTH // 2) + "k") == [TOO_LONG]


def test_common_passwords_are_refused_whatever_their_case() -> None:
    assert "password" in common_passwords()
    assert len(common_passwords()) >= 10_000  # the shipped list, not a handful
    assert check("Password", min_length=8) == [TOO_COMMON]
    long_common = next(p for p in common_passwords() if len(p) >= 12)
    assert check(long_common.upper()) == [TOO_COMMON]


def test_a_password_containing_the_emails_local_part_is_refused() -> None:
    assert check("my-Alice.Liddell-forever") == [HAS_EMAIL]


@pytest.mark.parametrize("password", ["", "abc"])
def test_every_broken_rule_has_its_own_message(password: str) -> None:
    assert check(password) == [TOO_SHORT.format(minimum=12)]
    assert problems("password", email="password@example.com", min_length=12) == [
        TOO_SHORT.format(minimum=12),
        TOO_COMMON,
        HAS_EMAIL,
    ]


def test_length_counts_characters_not_bytes() -> None:
    assert check("ünïcödé-ünïc") == []  # 12 characters, 19 bytes in UTF-8
    assert check("ünïcödé-ün") == [TOO_SHORT.format(minimum=12)]
