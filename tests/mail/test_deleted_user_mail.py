"""A deleted account gets no more mail: deleting a user (the management API's DELETE) drops the
mail still waiting for them, in the transaction that deletes them; others' mail still goes."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from idp.accounts.reset import mail_reset_link
from idp.clock import FrozenClock
from idp.settings import Settings
from tests.admin_api import PREFIX, admin_caller, bearer
from tests.conftest import InstanceFactory
from tests.factories import make_user
from tests.smtp import SmtpSink


async def test_deleting_a_user_drops_their_unsent_mail_and_only_theirs(
    app_instance: InstanceFactory,
    smtp_sink: SmtpSink,
    pool: asyncpg.Pool,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    leaving = await make_user(pool, "leaving@example.com")
    staying = await make_user(pool, "staying@example.com")
    smtp_sink.stop()  # the mail waits in the outbox
    async with app_instance(admin_api=True, smtp_url=smtp_sink.url) as instance:
        sender = instance.state["mail_sender"]
        token, _ = await admin_caller(instance.client, pool, settings)
        async with pool.acquire() as connection, connection.transaction():
            for user in (leaving, staying):
                await mail_reset_link(connection, instance.state["mailing"], user, clock.now())
        await sender.passed()  # tried once, refused: both wait for a retry

        answer = await instance.client.delete(f"{PREFIX}/users/{leaving.id}", headers=bearer(token))
        assert answer.status_code == 204, answer.text
        waiting = await pool.fetch("SELECT recipient FROM mail_outbox")
        assert [row["recipient"] for row in waiting] == ["staying@example.com"]

        smtp_sink.start()
        clock.advance(timedelta(minutes=5))
        await sender.passed()
        await smtp_sink.wait_for("staying@example.com")
        clock.advance(timedelta(minutes=5))
        await sender.passed()

    assert smtp_sink.to("leaving@example.com") == []
