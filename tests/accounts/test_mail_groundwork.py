"""The groundwork under every mail idp sends: templates (overridable from IDP_TEMPLATES_DIR),
sealed outbox rows, and mail tokens that are hashed, single-use and bound to one purpose."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from idp.accounts import mail_tokens
from idp.clock import FrozenClock
from idp.hashing import digest
from idp.mail.compose import Composer
from idp.mail.message import Mail, MailSeal, MailUnsealError
from idp.mail.outbox import Outbox
from idp.settings import Settings
from tests.factories import make_user


def test_an_operator_template_replaces_idps_own_by_name(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "password_changed.subject.txt").write_text("Changed at {{ issuer }}\n")
    composed = Composer(replace(settings, templates_dir=tmp_path)).compose(
        "password_changed", "a@example.com", name="A"
    )
    assert composed.subject == f"Changed at {settings.issuer}"
    own = Composer(settings).compose("password_changed", "a@example.com", name="A")
    assert own.subject != composed.subject
    assert own.text == composed.text  # the parts the operator did not replace are idp's


def test_mail_html_is_escaped_and_text_is_not(settings: Settings) -> None:
    composed = Composer(settings).compose("password_changed", "a@example.com", name="<b>Eve</b>")
    assert "<b>Eve</b>" not in composed.html
    assert "&lt;b&gt;Eve&lt;/b&gt;" in composed.html
    assert "<b>Eve</b>" in composed.text


def test_a_sealed_mail_opens_only_with_its_key_and_its_recipient() -> None:
    mail = Mail("a@example.com", "t", "Subject", "text https://x/?token=secret", "<p>html</p>")
    seal = MailSeal(b"k" * 32)
    sealed = seal.seal(mail)
    assert b"secret" not in sealed
    assert seal.unseal("a@example.com", "t", sealed) == mail
    with pytest.raises(MailUnsealError):
        seal.unseal("b@example.com", "t", sealed)
    with pytest.raises(MailUnsealError):
        MailSeal(b"j" * 32).unseal("a@example.com", "t", sealed)


async def test_outbox_put_stores_the_mail_sealed_and_rolls_back_with_its_transaction(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    outbox = Outbox(b"k" * 32)
    mail = Mail("a@example.com", "t", "S", "token=secret", "<p>h</p>")
    async with pool.acquire() as connection:
        async with connection.transaction():
            await outbox.put(connection, mail, clock.now())
        transaction = connection.transaction()
        await transaction.start()
        await outbox.put(connection, replace(mail, to="b@example.com"), clock.now())
        await transaction.rollback()  # the token's transaction failed: its mail goes with it
    rows = await pool.fetch("SELECT recipient, template, sealed FROM mail_outbox")
    assert [(row["recipient"], row["template"]) for row in rows] == [("a@example.com", "t")]
    assert outbox.seal.unseal("a@example.com", "t", rows[0]["sealed"]) == mail


async def test_a_mail_token_is_stored_hashed_works_once_and_only_for_its_purpose(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    user = await make_user(pool)
    now = clock.now()
    token = await mail_tokens.issue(pool, "reset_password", user.id, user.email, now)
    assert len(token) >= 43  # 256 bits, base64url
    stored = await pool.fetchval("SELECT token_hash FROM mail_tokens")
    assert stored == digest(token)
    assert await mail_tokens.peek(pool, token, "invitation", now) is None
    assert await mail_tokens.redeem(pool, token, "invitation", now) is None
    assert await mail_tokens.peek(pool, token, "reset_password", now) is not None
    assert await mail_tokens.peek(pool, token, "reset_password", now) is not None  # looks only
    redeemed = await mail_tokens.redeem(pool, token, "reset_password", now)
    assert redeemed is not None
    assert redeemed.user_id == user.id
    assert await mail_tokens.redeem(pool, token, "reset_password", now) is None


async def test_a_mail_token_expires_after_its_purposes_lifetime(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    user = await make_user(pool)
    now = clock.now()
    token = await mail_tokens.issue(pool, "reset_password", user.id, user.email, now)
    later = now + mail_tokens.TTL["reset_password"]
    assert await mail_tokens.peek(pool, token, "reset_password", later - timedelta(seconds=1))
    assert await mail_tokens.redeem(pool, token, "reset_password", later) is None


@pytest.mark.parametrize("token", ["", "short", "x" * 500, "not/base64url+token-aaaaaaaaaaaaaaa"])
async def test_what_is_not_a_token_never_reaches_the_database(
    pool: asyncpg.Pool, clock: FrozenClock, token: str
) -> None:
    assert await mail_tokens.redeem(pool, token, "reset_password", clock.now()) is None


async def test_voiding_ends_the_users_live_tokens_of_those_purposes_only(
    pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    user = await make_user(pool)
    now = clock.now()
    reset = await mail_tokens.issue(pool, "reset_password", user.id, user.email, now)
    verify = await mail_tokens.issue(pool, "verify_email", user.id, user.email, now)
    await mail_tokens.void(pool, user.id, mail_tokens.VOIDED_BY_PASSWORD, now)
    assert await mail_tokens.redeem(pool, reset, "reset_password", now) is None
    assert await mail_tokens.redeem(pool, verify, "verify_email", now) is not None
