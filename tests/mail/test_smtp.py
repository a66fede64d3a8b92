"""IDP_SMTP_URL as aiosmtplib speaks it: STARTTLS when offered, ``?tls=require`` or nothing,
``smtps://`` TLS from the first byte, AUTH with the URL's percent-decoded user and password, and
errors that never show the password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from idp.mail import smtp
from idp.mail.message import Mail
from idp.mail.smtp import SmtpError, SmtpServer
from tests.conftest import InstanceFactory
from tests.smtp import SmtpSink, TestAuthority, text_of

SENDER = "idp@idp.test"
TO = "ada@example.com"
MAIL = Mail(TO, "test", "Subject", "text body", "<p>html body</p>")
LOGIN = ("mailer@idp.test", "p@ss:w/rd%")  # what the URL's percent-encoding must carry
ENCODED = "mailer%40idp.test:p%40ss%3Aw%2Frd%25"


@pytest.fixture
def authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestAuthority:
    """A CA this process (and the processes it starts) trusts, as a real one would be."""
    made = TestAuthority(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(made.ca_file))
    return made


def running(sink: SmtpSink) -> Iterator[SmtpSink]:
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def starttls_sink(authority: TestAuthority) -> Iterator[SmtpSink]:
    yield from running(SmtpSink(tls="starttls", authority=authority))


@pytest.fixture
def implicit_sink(authority: TestAuthority) -> Iterator[SmtpSink]:
    yield from running(SmtpSink(tls="implicit", authority=authority, login=LOGIN))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example", SmtpServer("mail.example", 25, "opportunistic")),
        ("smtp://mail.example:587?tls=require", SmtpServer("mail.example", 587, "required")),
        ("smtps://mail.example", SmtpServer("mail.example", 465, "implicit")),
        (
            f"smtps://{ENCODED}@mail.example:2465",
            SmtpServer("mail.example", 2465, "implicit", *LOGIN),
        ),
        ("smtp://[::1]:2525", SmtpServer("::1", 2525, "opportunistic")),
    ],
)
def test_the_url_names_server_port_tls_and_login(url: str, expected: SmtpServer) -> None:
    server = SmtpServer.from_url(url)
    assert server == expected
    assert server.password is None or server.password not in repr(server)


async def test_starttls_is_used_when_the_server_offers_it(starttls_sink: SmtpSink) -> None:
    sent = await smtp.send(SmtpServer.from_url(starttls_sink.url), SENDER, MAIL)

    assert sent.describe() == f"via 127.0.0.1:{starttls_sink.port} with STARTTLS"
    assert [arrival.tls for arrival in starttls_sink.arrivals] == [True]
    assert text_of(starttls_sink.messages[0]).strip() == "text body"


async def test_without_starttls_on_offer_mail_goes_in_the_clear(smtp_sink: SmtpSink) -> None:
    sent = await smtp.send(SmtpServer.from_url(smtp_sink.url), SENDER, MAIL)

    assert sent.describe() == f"via 127.0.0.1:{smtp_sink.port} without TLS"
    assert [arrival.tls for arrival in smtp_sink.arrivals] == [False]


async def test_tls_require_refuses_a_server_without_starttls_and_the_mail_waits(
    app_instance: InstanceFactory, smtp_sink: SmtpSink, pool: asyncpg.Pool
) -> None:
    async with app_instance(smtp_url=f"{smtp_sink.url}?tls=require") as instance:
        async with instance.state["pool"].acquire() as connection:
            await instance.state["mailing"].outbox.put(
                connection, MAIL, instance.state["clock"].now()
            )
        await instance.state["mail_sender"].passed()

    assert smtp_sink.messages == []
    row = await pool.fetchrow("SELECT attempts, last_error, sent_at, sealed FROM mail_outbox")
    assert row is not None
    assert row["attempts"] == 1
    assert row["sent_at"] is None
    assert row["sealed"] is not None
    assert row["last_error"] == (
        f"127.0.0.1:{smtp_sink.port} does not offer STARTTLS, and IDP_SMTP_URL says ?tls=require"
    )


async def test_tls_require_sends_over_starttls(starttls_sink: SmtpSink) -> None:
    server = SmtpServer.from_url(f"{starttls_sink.url}?tls=require")
    sent = await smtp.send(server, SENDER, MAIL)

    assert sent.tls == "STARTTLS"
    assert [arrival.tls for arrival in starttls_sink.arrivals] == [True]


async def test_smtps_speaks_tls_from_the_first_byte_and_logs_in(implicit_sink: SmtpSink) -> None:
    url = implicit_sink.url.replace("smtps://", f"smtps://{ENCODED}@")
    sent = await smtp.send(SmtpServer.from_url(url), SENDER, MAIL)

    assert sent.describe() == f"via 127.0.0.1:{implicit_sink.port} with TLS"
    assert implicit_sink.arrivals[0].tls
    assert implicit_sink.arrivals[0].login == LOGIN[0]


async def test_a_refused_login_says_so_in_one_line_without_the_password(
    implicit_sink: SmtpSink,
) -> None:
    url = implicit_sink.url.replace("smtps://", "smtps://mailer%40idp.test:wrong-secret@")
    with pytest.raises(SmtpError) as refused:
        await smtp.send(SmtpServer.from_url(url), SENDER, MAIL)

    assert str(refused.value).startswith("mail server refused: 535")
    assert "wrong-secret" not in str(refused.value)
    assert "\n" not in str(refused.value)
    assert implicit_sink.messages == []


async def test_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    sink = SmtpSink(tls="implicit", authority=TestAuthority(tmp_path))  # a CA nobody trusts
    sink.start()
    try:
        with pytest.raises(SmtpError) as refused:
            await smtp.send(SmtpServer.from_url(sink.url), SENDER, MAIL)
    finally:
        sink.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    assert sink.messages == []


async def test_one_refused_mail_of_a_batch_fails_alone(smtp_sink: SmtpSink) -> None:
    injected = Mail("eve@example.com\r\nBcc: all@example.com", "test", "s", "t", "<p>h</p>")
    outcome = await smtp.send_all(
        SmtpServer.from_url(smtp_sink.url), SENDER, [MAIL, injected, MAIL]
    )

    assert outcome[0] is None
    assert outcome[2] is None
    assert outcome[1] is not None
    assert outcome[1].reason.startswith("not a valid mail")
    assert outcome[1].permanent  # the same mail will never be valid: not retried
    assert [message["To"] for message in smtp_sink.messages] == [TO, TO]


async def test_an_unreachable_server_fails_every_mail_of_the_batch(smtp_sink: SmtpSink) -> None:
    smtp_sink.stop()
    outcome = await smtp.send_all(SmtpServer.from_url(smtp_sink.url), SENDER, [MAIL, MAIL])

    assert len(outcome) == 2
    assert all(
        error is not None
        and error.reason.startswith(f"cannot reach 127.0.0.1:{smtp_sink.port}")
        and not error.permanent  # the next connection may go better
        for error in outcome
    )
