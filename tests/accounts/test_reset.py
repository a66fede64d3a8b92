"""The reset rules (idp.accounts.reset) on a real database, without HTTP: what a request for a
link writes for each kind of address, the limits, and the reset's single transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from idp.accounts import mail_tokens, reset
from idp.accounts.credentials import PasswordRejectedError
from idp.mail.compose import Composer
from idp.mail.outbox import Mailing, Outbox
from idp.passwords import Passwords
from idp.settings import Settings
from tests.factories import make_user

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NEW_PASSWORD = "a brand new passphrase"


async def send_link(pool: asyncpg.Pool, settings: Settings, kek: bytes, email: str) -> None:
    await reset.send_link(
        pool,
        email=email,
        ip="192.0.2.1",
        now=NOW,
        resume=None,
        mailing=Mailing(Outbox(kek), Composer(settings)),
    )


async def test_an_unknown_address_gets_no_token_and_no_mail_only_an_audit_row(
    pool: asyncpg.Pool, settings: Settings, kek: bytes
) -> None:
    await send_link(pool, settings, kek, "nobody@example.com")

    assert await pool.fetchval("SELECT count(*) FROM mail_tokens") == 0
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox") == 0
    row = await pool.fetchrow("SELECT action, subject, reason FROM audit_log")
    assert row is not None
    assert tuple(row.values()) == ("password.reset_requested", None, "no account")


async def test_a_disabled_user_gets_no_link(
    pool: asyncpg.Pool, settings: Settings, kek: bytes
) -> None:
    user = await make_user(pool, "alice@example.com")
    await pool.execute("UPDATE users SET disabled = true WHERE id = $1", user.id)

    await send_link(pool, settings, kek, "alice@example.com")

    assert await pool.fetchval("SELECT count(*) FROM mail_outbox") == 0


async def test_the_link_goes_to_the_stored_address_whatever_case_was_typed(
    pool: asyncpg.Pool, settings: Settings, kek: bytes
) -> None:
    await make_user(pool, "alice@example.com")

    await send_link(pool, settings, kek, "ALICE@Example.com")

    assert await pool.fetchval("SELECT recipient FROM mail_outbox") == "alice@example.com"
    assert await pool.fetchval("SELECT email FROM mail_tokens") == "alice@example.com"


async def test_the_address_limit_counts_every_spelling_of_an_address_as_one(
    pool: asyncpg.Pool,
) -> None:
    results = [
        await reset.within_limits(pool, email, f"192.0.2.{n}", NOW)
        for n, email in enumerate(["Alice@example.com", "alice@EXAMPLE.com"] * 3)
    ]

    assert results == [True] * reset.ADDRESS_LIMIT.hits + [False]
    later = NOW + reset.ADDRESS_LIMIT.window
    assert await reset.within_limits(pool, "alice@example.com", "192.0.2.9", later)


@pytest.mark.parametrize(
    "text", ["", "   ", "alice", "@example.com", "alice@", "a b@example.com", "a@b@c",
             "alice\x00@example.com", "a" * 250 + "@example.com"],
)  # fmt: skip
def test_what_is_not_an_address_is_refused_for_its_shape(text: str) -> None:
    assert reset.address(text) is None


def test_an_address_is_taken_as_typed_less_surrounding_spaces() -> None:
    assert reset.address("  Alice@Example.com ") == "Alice@Example.com"


async def test_a_disabled_users_link_cannot_reset_and_stays_unused(
    pool: asyncpg.Pool, settings: Settings, kek: bytes
) -> None:
    user = await make_user(pool, "alice@example.com")
    token = await mail_tokens.issue(pool, "reset_password", user.id, user.email, NOW)
    link = await reset.open_link(pool, token, NOW)
    assert link is not None
    await pool.execute("UPDATE users SET disabled = true WHERE id = $1", user.id)
    passwords = Passwords("test")
    try:
        with pytest.raises(reset.ResetLinkError):
            await reset.complete_reset(
                pool, passwords, link, token=token, password=NEW_PASSWORD, now=NOW,
                min_length=12, deny_until=NOW + timedelta(hours=1), ip="192.0.2.1",
                mailing=Mailing(Outbox(kek), Composer(settings)),
            )  # fmt: skip
        with pytest.raises(PasswordRejectedError):
            await reset.complete_reset(
                pool, passwords, link, token=token, password="alice", now=NOW,
                min_length=12, deny_until=NOW + timedelta(hours=1), ip="192.0.2.1",
                mailing=Mailing(Outbox(kek), Composer(settings)),
            )  # fmt: skip
    finally:
        passwords.close()

    assert await pool.fetchval("SELECT password_hash FROM users") == user.password_hash
    assert await pool.fetchval("SELECT used_at FROM mail_tokens") is None
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox") == 0
