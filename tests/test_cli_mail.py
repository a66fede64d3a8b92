"""``idp mail test`` and ``idp mail queue`` as an operator runs them: subprocesses talking to a
real SMTP server, reading the test database's outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from tests.helpers import assert_one_line_error, idp
from tests.smtp import SmtpSink, TestAuthority, html_of, text_of

TO = "ada@example.com"


async def test_mail_test_sends_a_test_mail_and_says_so_in_one_line(
    cli_env: dict[str, str], smtp_sink: SmtpSink
) -> None:
    env = cli_env | {"IDP_SMTP_URL": smtp_sink.url, "IDP_MAIL_FROM": "login@idp.test"}
    result = await idp(env, "mail", "test", TO)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"idp: sent to {TO} via 127.0.0.1:{smtp_sink.port} without TLS\n"
    [message] = smtp_sink.messages
    assert message["From"] == "login@idp.test"
    assert message["To"] == TO
    assert message["Subject"].startswith("Test mail from idp")
    assert "idp mail test" in text_of(message)
    assert "<code>idp mail test</code>" in html_of(message)


async def test_mail_test_tells_starttls_and_a_refused_login(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    authority = TestAuthority(tmp_path)
    sink = SmtpSink(tls="starttls", authority=authority, login=("mailer", "right-secret"))
    sink.start()
    try:
        env = cli_env | {"SSL_CERT_FILE": str(authority.ca_file)}
        right = await idp(
            env | {"IDP_SMTP_URL": f"smtp://mailer:right-secret@127.0.0.1:{sink.port}"},
            "mail", "test", TO,
        )  # fmt: skip
        wrong = await idp(
            env | {"IDP_SMTP_URL": f"smtp://mailer:wrong-secret@127.0.0.1:{sink.port}"},
            "mail", "test", TO,
        )  # fmt: skip
    finally:
        sink.stop()

    assert right.returncode == 0, right.stderr
    assert right.stdout == f"idp: sent to {TO} via 127.0.0.1:{sink.port} with STARTTLS\n"
    line = assert_one_line_error(wrong)
    assert line.startswith("idp: mail server refused: 535")
    assert "secret" not in wrong.stderr + wrong.stdout
    assert len(sink.messages) == 1


async def test_mail_test_to_an_unreachable_server_fails_in_one_line(
    cli_env: dict[str, str], smtp_sink: SmtpSink
) -> None:
    smtp_sink.stop()
    url = f"smtp://user:hunter2@127.0.0.1:{smtp_sink.port}"
    result = await idp(cli_env | {"IDP_SMTP_URL": url}, "mail", "test", TO)

    line = assert_one_line_error(result)
    assert line.startswith(f"idp: cannot reach 127.0.0.1:{smtp_sink.port}: ")
    assert "hunter2" not in line


async def test_mail_test_without_a_mail_server_says_so(cli_env: dict[str, str]) -> None:
    result = await idp(cli_env, "mail", "test", TO)

    assert assert_one_line_error(result) == (
        "idp: IDP_SMTP_URL is not set: there is no mail server to send to"
    )


async def seed_queue(pool: asyncpg.Pool) -> datetime:
    now = datetime.now(UTC)
    rows = [
        ("waiting@example.com", "reset_password", now - timedelta(minutes=5), 2,
         now + timedelta(minutes=1), "cannot reach mail.example:25: Connection refused", None,
         None),
        ("new@example.com", "verify_email", now, 0, now, None, None, None),
        ("sent@example.com", "verify_email", now - timedelta(hours=1), 0, now, None, now, None),
        ("old@example.com", "verify_email", now - timedelta(days=2), 0, now, None,
         now - timedelta(days=2), None),
        ("lost@example.com", "invitation", now - timedelta(days=2), 9, now, "550 no such user",
         None, now - timedelta(days=1)),
    ]  # fmt: skip
    await pool.executemany(
        "INSERT INTO mail_outbox (recipient, template, sealed, created_at, attempts, "
        "next_attempt_at, last_error, sent_at, given_up_at) "
        "VALUES ($1, $2, '\\x00', $3, $4, $5, $6, $7, $8)",
        rows,
    )
    return now


async def test_mail_queue_shows_what_waits_and_why(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    await seed_queue(pool)
    result = await idp(cli_env | {"IDP_SMTP_URL": "smtp://u:pw@mail.example"}, "mail", "queue")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "TO", "TEMPLATE", "ATTEMPTS", "NEXT", "ATTEMPT", "LAST",
                                "ERROR"]  # fmt: skip
    assert lines[1].split()[:4] == ["1", "waiting@example.com", "reset_password", "2"]
    assert lines[1].endswith("cannot reach mail.example:25: Connection refused")
    assert lines[2].split()[:4] == ["2", "new@example.com", "verify_email", "0"]
    assert lines[3] == "2 waiting, 1 sent in the last 24 h, 1 given up (kept 7 days)"
    assert len(lines) == 4
    assert "pw" not in result.stdout


async def test_mail_queue_json(cli_env: dict[str, str], pool: asyncpg.Pool) -> None:
    await seed_queue(pool)
    result = await idp(cli_env | {"IDP_SMTP_URL": "smtp://mail.example"}, "mail", "queue", "--json")

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["smtp"] == "mail.example:25"
    assert answer["summary"] == {"waiting": 2, "sent": 1, "given_up": 1}
    assert [row["to"] for row in answer["waiting"]] == ["waiting@example.com", "new@example.com"]
    first = answer["waiting"][0]
    assert first["attempts"] == 2
    assert first["template"] == "reset_password"
    assert first["last_error"].startswith("cannot reach")
    assert datetime.fromisoformat(first["next_attempt_at"]) > datetime.fromisoformat(
        first["queued_at"]
    )


async def test_mail_queue_without_a_mail_server_says_why_nothing_is_sent(
    cli_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    await seed_queue(pool)
    result = await idp(cli_env, "mail", "queue")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "idp: IDP_SMTP_URL is not set: nothing is sent, mail waits in the outbox "
        "(idp serve --demo shows it on /demo/mailbox)"
    )
    assert json.loads((await idp(cli_env, "mail", "queue", "--json")).stdout)["smtp"] is None
