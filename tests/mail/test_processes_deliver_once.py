"""Two ``idp serve`` processes (real processes, one database, one outbox) deliver each mail once:
the issue's acceptance, beside the two-instance test of tests/mail/test_sender.py that runs in
one process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from idp.mail.message import Mail
from idp.mail.outbox import Outbox
from tests.helpers import free_port
from tests.processes import Processes, idp_environ
from tests.smtp import SmtpSink, wait_until

MAILS = 200


@pytest.mark.usefixtures("pool")  # for its TRUNCATE: the processes start on an empty database
async def test_two_serve_processes_deliver_each_queued_mail_exactly_once(
    processes: Processes, migrated: str, kek: bytes, smtp_sink: SmtpSink
) -> None:
    port_a, port_b = free_port(), free_port()
    env = idp_environ(migrated, kek, f"http://127.0.0.1:{port_a}", IDP_SMTP_URL=smtp_sink.url)
    await asyncio.gather(processes.serve(env, port_a), processes.serve(env, port_b))
    outbox = Outbox(kek)
    connection = await asyncpg.connect(migrated)
    try:
        now = datetime.now(UTC)
        for n in range(MAILS):  # one transaction each: each NOTIFY wakes both senders
            async with connection.transaction():
                mail = Mail(f"to{n}@example.com", "test", f"Mail {n}", f"text {n}", "<p>h</p>")
                await outbox.put(connection, mail, now)

        async def all_sent() -> bool:
            unsent = await connection.fetchval(
                "SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL"
            )
            return len(smtp_sink.messages) >= MAILS and unsent == 0

        await wait_until(all_sent)
    finally:
        await connection.close()
    await asyncio.sleep(1)  # a second send of a mail, still in flight, would arrive by now
    subjects = sorted(str(message["Subject"]) for message in smtp_sink.messages)
    assert subjects == sorted(f"Mail {n}" for n in range(MAILS))
