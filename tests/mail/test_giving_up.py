"""When the sender stops trying: at the expiry of the link a mail carries (24 h for mail without
one), and at once when the server refuses a mail for good (RFC 5321 §4.2.1: 5yz permanent, 4yz
transient). Either way the mail is given up, audited and logged, never its body or link."""

from __future__ import annotations

import logging
from datetime import timedelta

import aiosmtplib
import asyncpg
import pytest

from idp.accounts import invitations, mail_tokens
from idp.accounts.reset import mail_reset_link
from idp.accounts.signup import queue_verification
from idp.audit_trail import audited
from idp.clock import FrozenClock
from idp.db.users import User
from idp.mail.message import Mail
from idp.mail.sender import MAX_AGE, retry_delay
from idp.mail.smtp import is_permanent
from tests.conftest import Instance, InstanceFactory
from tests.factories import make_user
from tests.smtp import SmtpSink

RESET_TTL = mail_tokens.TTL["reset_password"]
VERIFY_TTL = mail_tokens.TTL["verify_email"]
INVITATION_TTL = mail_tokens.TTL["invitation"]


async def queue_reset_and_verification(instance: Instance, reset: User, verify: User) -> None:
    now = instance.state["clock"].now()
    mailing = instance.state["mailing"]
    async with instance.state["pool"].acquire() as connection, connection.transaction():
        await mail_reset_link(connection, mailing, reset, now)
        await queue_verification(connection, mailing, verify, now, resume=None)


async def state_of(pool: asyncpg.Pool) -> dict[str, asyncpg.Record]:
    """Each row by template."""
    rows = await pool.fetch(
        "SELECT template, attempts, last_error, next_attempt_at, sent_at, given_up_at, "
        "link_expires_at FROM mail_outbox ORDER BY id"
    )
    return {row["template"]: row for row in rows}


async def given_up_events(pool: asyncpg.Pool) -> dict[str, str]:
    """The ``mail.given_up`` audit events: recipient -> reason."""
    rows = await pool.fetch(
        "SELECT subject, reason FROM audit_log WHERE action = 'mail.given_up' ORDER BY id"
    )
    return {row["subject"]: row["reason"] for row in rows}


async def test_a_reset_mail_is_given_up_when_its_link_expires_and_never_sent_after(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    """An SMTP outage longer than a reset link's 30 minutes: the reset mail is given up at the
    link's expiry (its retry is never due later), while the verification mail queued with it,
    whose link lives 24 h, is retried and arrives when the server is back."""
    reset = await make_user(pool, "reset@example.com")
    verify = await make_user(pool, "verify@example.com")
    smtp_sink.stop()
    async with app_instance(smtp_url=smtp_sink.url) as instance:
        sender = instance.state["mail_sender"]
        queued_at = clock.now()
        await queue_reset_and_verification(instance, reset, verify)
        await sender.passed()
        clock.advance(RESET_TTL - timedelta(seconds=1))
        await sender.passed()
        rows = await state_of(pool)
        assert rows["reset_password"]["link_expires_at"] == queued_at + RESET_TTL
        assert rows["reset_password"]["attempts"] == 2
        assert rows["reset_password"]["given_up_at"] is None
        # Its next retry would be a minute later; it is due at the link's end instead.
        assert rows["reset_password"]["next_attempt_at"] == queued_at + RESET_TTL

        clock.advance(timedelta(seconds=1))
        await sender.passed()
        rows = await state_of(pool)
        assert rows["reset_password"]["given_up_at"] == queued_at + RESET_TTL
        assert rows["verify_email"]["given_up_at"] is None
        assert rows["verify_email"]["link_expires_at"] == queued_at + VERIFY_TTL

        smtp_sink.start()
        clock.advance(timedelta(hours=1))
        await sender.passed()
        await smtp_sink.wait_for("verify@example.com")
        clock.advance(timedelta(hours=2))
        await sender.passed()

    assert smtp_sink.to("reset@example.com") == []
    rows = await state_of(pool)
    assert rows["reset_password"]["sent_at"] is None
    assert rows["verify_email"]["sent_at"] is not None
    reasons = await given_up_events(pool)
    assert list(reasons) == ["reset@example.com"]
    assert reasons["reset@example.com"].startswith("its link expired at ")
    assert "cannot reach" in reasons["reset@example.com"]


async def test_a_longer_link_is_retried_until_its_own_expiry_past_a_day(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    """Mail without a link is given up after MAX_AGE (24 h); an invitation, whose link lives
    72 h, keeps being retried until then, and is given up at its link's expiry."""
    smtp_sink.stop()
    async with app_instance(smtp_url=smtp_sink.url) as instance:
        sender = instance.state["mail_sender"]
        queued_at = clock.now()
        async with pool.acquire() as connection, audited(connection) as trail:
            await invitations.invite(
                connection,
                trail,
                email="new@example.com",
                name=None,
                roles=[],
                now=queued_at,
                actor="test",
                mailing=instance.state["mailing"],
            )
            plain = Mail("plain@example.com", "notice", "s", "no link here", "<p>none</p>")
            await instance.state["mailing"].outbox.put(connection, plain, queued_at)
        await sender.passed()
        clock.set(queued_at + MAX_AGE)
        await sender.passed()
        rows = await state_of(pool)
        assert rows["notice"]["given_up_at"] == queued_at + MAX_AGE
        assert rows["invitation"]["given_up_at"] is None

        for hours in (25, 48, 71):
            clock.set(queued_at + timedelta(hours=hours))
            attempts = (await state_of(pool))["invitation"]["attempts"]
            await sender.passed()
            rows = await state_of(pool)
            assert rows["invitation"]["attempts"] == attempts + 1, hours
            assert rows["invitation"]["given_up_at"] is None

        clock.set(queued_at + INVITATION_TTL)
        await sender.passed()

    rows = await state_of(pool)
    assert rows["invitation"]["given_up_at"] == queued_at + INVITATION_TTL
    reasons = await given_up_events(pool)
    assert reasons["new@example.com"].startswith("its link expired at ")
    assert reasons["plain@example.com"].startswith("cannot reach")  # 24 h: no link to expire


async def test_a_550_gives_up_that_mail_at_once_and_a_451_in_the_same_batch_is_retried(
    app_instance: InstanceFactory,
    smtp_sink: SmtpSink,
    pool: asyncpg.Pool,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three mails over one connection: 550 for one recipient (permanent, RFC 5321 §4.2.1) gives
    up that mail alone, with the server's code and never the mail's link; 451 (transient) for
    another is retried after the backoff and goes once the server takes it; the third goes."""
    gone = await make_user(pool, "gone@example.com")
    busy = await make_user(pool, "busy@example.com")
    fine = await make_user(pool, "fine@example.com")
    smtp_sink.refusals["gone@example.com"] = "550 5.1.1 mailbox unavailable"
    smtp_sink.refusals["busy@example.com"] = "451 4.3.0 try again later"
    caplog.set_level(logging.WARNING, logger="idp.mail.sender")
    async with app_instance(smtp_url=smtp_sink.url) as instance:
        sender = instance.state["mail_sender"]
        mailing = instance.state["mailing"]
        async with pool.acquire() as connection, connection.transaction():
            for user in (gone, busy, fine):
                await mail_reset_link(connection, mailing, user, clock.now())
        await sender.passed()
        await smtp_sink.wait_for("fine@example.com")
        rows = {
            row["recipient"]: row
            for row in await pool.fetch(
                "SELECT recipient, attempts, last_error, next_attempt_at, given_up_at, sent_at "
                "FROM mail_outbox"
            )
        }
        assert rows["gone@example.com"]["given_up_at"] == clock.now()
        assert rows["gone@example.com"]["attempts"] == 1
        assert rows["gone@example.com"]["last_error"].startswith("mail server refused: 550")
        assert rows["busy@example.com"]["given_up_at"] is None
        assert rows["busy@example.com"]["next_attempt_at"] == clock.now() + retry_delay(1)
        assert "451" in rows["busy@example.com"]["last_error"]

        smtp_sink.refusals.clear()
        clock.advance(retry_delay(1))
        await sender.passed()
        await smtp_sink.wait_for("busy@example.com")
        clock.advance(timedelta(hours=1))
        await sender.passed()

    assert smtp_sink.to("gone@example.com") == []
    assert len(smtp_sink.to("busy@example.com")) == 1
    reasons = await given_up_events(pool)
    assert list(reasons) == ["gone@example.com"]
    assert reasons["gone@example.com"].startswith("mail server refused: 550")
    logged = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert len(logged) == 1
    assert "550" in logged[0]
    assert "gone@example.com" in logged[0]
    for told in (*logged, *reasons.values()):
        assert "token=" not in told
        assert "reset-password" not in told


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (aiosmtplib.SMTPDataError(554, "message rejected"), True),
        (aiosmtplib.SMTPDataError(452, "insufficient storage"), False),
        (aiosmtplib.SMTPResponseException(421, "closing"), False),
        (aiosmtplib.SMTPSenderRefused(550, "sender rejected", "idp@idp.test"), False),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(553, "bad", "a@example.com")]
            ),
            True,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [
                    aiosmtplib.SMTPRecipientRefused(550, "no", "a@example.com"),
                    aiosmtplib.SMTPRecipientRefused(450, "later", "b@example.com"),
                ]
            ),
            False,
        ),
    ],
)
def test_only_a_5yz_refusal_of_the_mail_itself_is_permanent(
    error: aiosmtplib.SMTPException, permanent: bool
) -> None:
    """RFC 5321 §4.2.1; a refused sender says the operator's IDP_MAIL_FROM or login is wrong,
    which is fixed without losing the queue."""
    assert is_permanent(error) is permanent
