"""The sender delivers what the outbox holds: each mail once, with its text and HTML, through an
SMTP server that goes away and comes back, from two processes at once; it gives up after 24 h."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from prometheus_client import REGISTRY

from idp.clock import FrozenClock
from idp.mail.message import Mail
from idp.mail.sender import MAX_AGE, retry_delay
from tests.conftest import Instance, InstanceFactory
from tests.smtp import SmtpSink, html_of, text_of

TO = "ada@example.com"


def mail(to: str = TO, n: int = 0) -> Mail:
    return Mail(
        to,
        "test",
        f"Hello {n}",
        f"Plain text {n}: http://idp.test/verify-email?token=abc{n}",
        f'<p>HTML {n}: <a href="http://idp.test/verify-email?token=abc{n}">verify</a></p>',
    )


async def queue(instance: Instance, *mails: Mail) -> None:
    """Queued in one transaction, as a page would."""
    async with instance.state["pool"].acquire() as connection, connection.transaction():
        for one in mails:
            await instance.state["mailing"].outbox.put(
                connection, one, instance.state["clock"].now()
            )


async def rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, attempts, last_error, next_attempt_at, sent_at, given_up_at, "
        "sealed IS NOT NULL AS sealed FROM mail_outbox ORDER BY id"
    )


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_total") or 0.0


async def test_a_queued_mail_arrives_once_with_text_and_html(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, pool: asyncpg.Pool
) -> None:
    async with app_instance(smtp_url=smtp_sink.url, mail_from="login@idp.test") as instance:
        await queue(instance, mail())
        message = await smtp_sink.wait_for(TO)
        await instance.state["mail_sender"].passed()  # one more pass: nothing goes twice

    assert len(smtp_sink.messages) == 1
    assert message["From"] == "login@idp.test"
    assert message["To"] == TO
    assert message["Subject"] == "Hello 0"
    assert message.get_content_type() == "multipart/alternative"
    assert "Plain text 0: http://idp.test/verify-email?token=abc0" in text_of(message)
    assert '<a href="http://idp.test/verify-email?token=abc0">' in html_of(message)
    assert smtp_sink.recipients == [[TO]]
    [row] = await rows(pool)
    assert row["sent_at"] is not None
    assert row["attempts"] == 0
    assert not row["sealed"]  # the bodies, tokens and all, are gone once sent


async def test_a_row_that_cannot_be_opened_fails_alone_and_the_sender_goes_on(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    """A truncated or foreign sealed body is recorded as that mail's failure; the others go,
    and the sender keeps delivering what comes after."""
    async with app_instance(smtp_url=smtp_sink.url) as instance:
        for sealed in (b"abc", b"x" * 40):
            await pool.execute(
                "INSERT INTO mail_outbox (recipient, template, sealed, created_at, "
                "next_attempt_at) VALUES ('broken@example.com', 't', $1, $2, $2)",
                sealed,
                clock.now(),
            )
        await queue(instance, mail())
        await smtp_sink.wait_for(TO)
        await queue(instance, mail("later@example.com", 1))
        await smtp_sink.wait_for("later@example.com")
    broken = await pool.fetch(
        "SELECT attempts, last_error FROM mail_outbox WHERE recipient = 'broken@example.com'"
    )
    assert [(row["attempts"], row["last_error"]) for row in broken] == [
        (1, "IDP_KEY_ENCRYPTION_KEY does not open this mail")
    ] * 2


async def test_a_mail_queued_while_the_server_is_down_arrives_once_when_it_is_back(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    smtp_sink.stop()
    async with app_instance(smtp_url=smtp_sink.url) as instance:
        sender = instance.state["mail_sender"]
        failed_before = counter("idp_mail_failed_attempts")
        await queue(instance, mail())
        await sender.passed()

        [row] = await rows(pool)
        assert row["attempts"] == 1
        assert row["sent_at"] is None
        assert row["sealed"]
        assert f"cannot reach 127.0.0.1:{smtp_sink.port}" in row["last_error"]
        assert "\n" not in row["last_error"]
        assert row["next_attempt_at"] == clock.now() + retry_delay(1)
        assert counter("idp_mail_failed_attempts") == failed_before + 1

        smtp_sink.start()
        await sender.passed()  # the retry is not due yet: nothing is sent
        assert smtp_sink.messages == []

        clock.advance(retry_delay(1))
        await sender.passed()
        await smtp_sink.wait_for(TO)
        clock.advance(timedelta(hours=2))
        await sender.passed()

    assert len(smtp_sink.to(TO)) == 1
    [row] = await rows(pool)
    assert row["sent_at"] == clock.now() - timedelta(hours=2)
    assert row["last_error"] is None


async def test_two_instances_on_one_outbox_send_each_mail_once(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, pool: asyncpg.Pool
) -> None:
    count = 300
    async with (
        app_instance(smtp_url=smtp_sink.url) as first,
        app_instance(smtp_url=smtp_sink.url) as second,
    ):
        # Both woken by every NOTIFY: they race for the same rows.
        await asyncio.gather(
            *(queue(first if n % 2 else second, mail(f"user{n}@example.com", n))
              for n in range(count))
        )  # fmt: skip
        async with asyncio.timeout(30):
            while len(smtp_sink.messages) < count:  # noqa: ASYNC110 - the server's thread
                await asyncio.sleep(0.05)
        await asyncio.gather(
            first.state["mail_sender"].passed(), second.state["mail_sender"].passed()
        )

    received = sorted(str(message["To"]) for message in smtp_sink.messages)
    assert received == sorted(f"user{n}@example.com" for n in range(count))
    assert await pool.fetchval("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL") == 0


async def test_a_mail_not_sent_within_24_hours_is_given_up_audited_and_counted(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, pool: asyncpg.Pool, clock: FrozenClock
) -> None:
    smtp_sink.stop()
    async with app_instance(smtp_url=smtp_sink.url) as instance:
        sender = instance.state["mail_sender"]
        given_up_before = counter("idp_mail_given_up")
        await queue(instance, mail())
        await sender.passed()
        clock.advance(MAX_AGE - timedelta(seconds=1))  # still worth one more try...
        await sender.passed()
        [row] = await rows(pool)
        assert row["attempts"] == 2
        assert row["given_up_at"] is None
        clock.advance(retry_delay(2))  # ...not past a day
        await sender.passed()
        smtp_sink.start()
        clock.advance(timedelta(hours=2))
        await sender.passed()

    [row] = await rows(pool)
    assert row["given_up_at"] is not None
    assert row["sent_at"] is None
    assert row["attempts"] == 2
    assert smtp_sink.messages == []
    [event] = await pool.fetch(
        "SELECT actor, action, subject, reason, details FROM audit_log "
        "WHERE action = 'mail.given_up'"
    )
    assert event["subject"] == TO
    assert "cannot reach" in event["reason"]
    assert counter("idp_mail_given_up") == given_up_before + 1


async def test_a_backoff_doubles_up_to_an_hour() -> None:
    delays = [retry_delay(n) for n in range(1, 10)]
    assert delays[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert max(delays) == timedelta(hours=1) == retry_delay(1000)


async def test_without_an_smtp_url_mail_waits(
    app_instance: InstanceFactory, pool: asyncpg.Pool
) -> None:
    async with app_instance() as instance:
        assert instance.state["mail_sender"].mode == "off"
        await queue(instance, mail())
        await instance.state["mail_sender"].passed()
        assert "idp_mail_queue_depth 1.0" in (await instance.client.get("/metrics")).text

    [row] = await rows(pool)
    assert row["sent_at"] is None
    assert row["attempts"] == 0
    assert row["sealed"]


async def test_metrics_show_the_queue_depth_and_mail_counters(
    app_instance: InstanceFactory, smtp_sink: SmtpSink
) -> None:
    smtp_sink.stop()
    async with app_instance(smtp_url=smtp_sink.url) as instance:
        await queue(instance, mail(), mail("bob@example.com"))
        await instance.state["mail_sender"].passed()
        body = (await instance.client.get("/metrics")).text

    assert "idp_mail_queue_depth 2.0" in body
    for name in ("idp_mail_sent_total", "idp_mail_failed_attempts_total", "idp_mail_given_up"):
        assert name in body


async def test_every_instance_scraped_reports_the_queue_as_it_is_now(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    """Two instances on one outbox, as workers or replicas are: when one gives a mail up, the
    other's /metrics says so at once, though its own sender has not looked since."""
    smtp_sink.stop()
    async with (
        app_instance(smtp_url=smtp_sink.url) as first,
        app_instance(smtp_url=smtp_sink.url) as second,
    ):
        await queue(first, mail(), mail("bob@example.com"))
        await asyncio.gather(
            first.state["mail_sender"].passed(), second.state["mail_sender"].passed()
        )
        both = [(await one.client.get("/metrics")).text for one in (first, second)]
        clock.advance(MAX_AGE + timedelta(seconds=1))
        await first.state["mail_sender"].passed()  # gives both up; nothing wakes the second
        after = [(await one.client.get("/metrics")).text for one in (first, second)]

    assert all("idp_mail_queue_depth 2.0" in body for body in both)
    assert all("idp_mail_queue_depth 0.0" in body for body in after)


async def test_metrics_answer_without_the_queue_gauge_while_the_database_is_away(
    app_instance: InstanceFactory,
) -> None:
    async with app_instance() as instance:
        await queue(instance, mail())
        await instance.state["pool"].close()
        answer = await instance.client.get("/metrics")

    assert answer.status_code == 200
    assert "idp_mail_queue_depth" not in answer.text
    assert "idp_mail_sent_total" in answer.text
