"""The mail sender every process runs: it delivers what the outbox holds.

A pass gives up the mails no longer worth sending (their link has expired; a mail without a
link once queued more than ``MAX_AGE`` ago), then claims due rows in batches (``FOR UPDATE SKIP
LOCKED`` and a lease, one statement: idp.db.outbox), sends each batch over one SMTP connection
with no transaction open, and marks each mail sent, or given up at once when the server refused
it for good (5yz, RFC 5321 §4.2.1), or records its failure, to be tried again after an
exponential backoff (never past its link's expiry). Passes run when a mail is queued (``NOTIFY
idp_mail``), when the earliest retry is due, and at least every ``POLL_EVERY`` as a safety net.

Where mail goes (``mode``):

- ``smtp``: to ``IDP_SMTP_URL``; the bodies (which carry tokens) are dropped once sent;
- ``mailbox``: demo mode without ``IDP_SMTP_URL``: marked sent at once, bodies kept for the
  ``/demo/mailbox`` page (idp.web.mailbox);
- ``off``: nowhere; mail waits until an operator sets ``IDP_SMTP_URL`` (``idp mail queue``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from idp.audit_trail import AuditTrail, audited
from idp.clock import Clock
from idp.db import outbox
from idp.db.listener import Subscription
from idp.db.outbox import Claimed, Failure, GivenUp
from idp.mail import smtp
from idp.mail.message import Mail, MailSeal, MailUnsealError
from idp.mail.smtp import Refused
from idp.metrics import MAIL_FAILED, MAIL_SENT
from idp.settings import Settings
from idp.tasks import cancel, woken

log = logging.getLogger(__name__)

CHANNEL = "idp_mail"  # migration 0015's trigger notifies it on every insert
ACTOR = "mail-sender"
MAX_AGE = timedelta(hours=24)  # then a mail without a link is given up: it is stale news
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
BATCH_SIZE = 50
# A batch must be sent within SEND_DEADLINE; its lease lasts a minute longer, so no other
# sender takes a row while this one may still be sending it.
SEND_DEADLINE = timedelta(minutes=5)
LEASE = SEND_DEADLINE + timedelta(minutes=1)
POLL_EVERY = 10.0  # seconds: the safety net behind NOTIFY

Mode = Literal["smtp", "mailbox", "off"]


def retry_delay(attempts: int) -> timedelta:
    """After the ``attempts``-th failure: 30 s, 1 min, 2 min, ... at most an hour."""
    return min(FIRST_RETRY * (1 << min(attempts - 1, 20)), LONGEST_RETRY)


class MailSender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock,
        settings: Settings,
        seal: MailSeal,
        *,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._sender = settings.sender
        self._seal = seal
        self._batch_size = batch_size
        self._server = (
            None if settings.smtp_url is None else smtp.SmtpServer.from_url(settings.smtp_url)
        )
        self.mode: Mode = "smtp" if self._server else ("mailbox" if settings.demo else "off")
        self._wake = asyncio.Event()
        self._passes = asyncio.Condition()
        self._started = self._finished = 0
        self._task: asyncio.Task[None] | None = None

    def subscription(self) -> Subscription:
        # A reconnected listener may have missed notifications: a pass finds what they said.
        return Subscription(CHANNEL, lambda _payload: self.wake(), self.wake)

    def wake(self) -> None:
        """Run a pass now (a mail was queued; tests moved the clock)."""
        self._wake.set()

    async def passed(self, within: float = 60.0) -> None:
        """Wake the sender and wait until a whole pass has run after this call; TimeoutError
        after ``within`` seconds (a sender that has stopped never passes: say so, never hang)."""
        target = self._started + 1
        self.wake()
        async with asyncio.timeout(within), self._passes:
            await self._passes.wait_for(lambda: self._finished >= target)

    def start(self) -> None:
        if self.mode == "off":
            log.warning("IDP_SMTP_URL is not set: mail waits in the outbox (idp mail queue)")
        elif self.mode == "mailbox":
            log.info("demo mode without IDP_SMTP_URL: mail goes to /demo/mailbox")
        self._task = asyncio.create_task(self._run(), name="mail-sender")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            self._started += 1
            try:
                wait = await self.deliver()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("mail sender: the database failed; trying again", exc_info=True)
                wait = 1.0
            except Exception:  # a bug must not stop this process's mail for good
                log.exception("mail sender: a pass failed; trying again")
                wait = POLL_EVERY
            async with self._passes:
                self._finished += 1
                self._passes.notify_all()
            await woken(self._wake, wait)

    async def deliver(self) -> float:
        """One pass; returns how many seconds may pass before the next one."""
        if self.mode != "off":
            await self._give_up(self._clock.now())
            while True:
                now = self._clock.now()
                batch = await outbox.claim(
                    self._pool, now, now + LEASE, self._batch_size, now - MAX_AGE
                )
                if batch:
                    await self._send(batch)
                if len(batch) < self._batch_size:
                    break
        _, next_due = await outbox.pending_summary(self._pool)
        if next_due is None or self.mode == "off":
            return POLL_EVERY
        # The earliest retry (or lease's end), in the clock's time; not sooner than a second.
        until_due = (next_due - self._clock.now()).total_seconds()
        return min(POLL_EVERY, max(1.0, until_due))

    async def _send(self, batch: list[Claimed]) -> None:
        if self.mode == "mailbox":
            ids = [row.id for row in batch]
            await outbox.mark_sent(self._pool, ids, self._clock.now(), keep_bodies=True)
            MAIL_SENT.inc(len(ids))
            return
        assert self._server is not None
        errors: dict[int, Refused] = {}
        mails: list[tuple[Claimed, Mail]] = []
        for row in batch:
            try:
                mails.append((row, self._seal.unseal(row.recipient, row.template, row.sealed)))
            except MailUnsealError as error:
                errors[row.id] = Refused(str(error))
        try:
            async with asyncio.timeout(SEND_DEADLINE.total_seconds()):
                outcome = await smtp.send_all(self._server, self._sender, [m for _, m in mails])
        except TimeoutError:
            late = Refused(f"{self._server.address}: no answer within {SEND_DEADLINE}")
            outcome = [late] * len(mails)
        errors.update({row.id: e for (row, _), e in zip(mails, outcome, strict=True) if e})
        now = self._clock.now()
        sent = [row.id for row in batch if row.id not in errors]
        if sent:
            await outbox.mark_sent(self._pool, sent, now, keep_bodies=False)
            MAIL_SENT.inc(len(sent))
        if errors:
            await self._record(batch, errors, now)

    async def _record(
        self, batch: list[Claimed], errors: dict[int, Refused], now: datetime
    ) -> None:
        failures = [
            Failure(row.id, errors[row.id].reason, now + retry_delay(row.attempts + 1))
            for row in batch
            if row.id in errors
        ]
        refused = [one for one in failures if errors[one.id].permanent]
        retried = [one for one in failures if not errors[one.id].permanent]
        if retried:
            await outbox.record_failures(self._pool, retried)
        MAIL_FAILED.inc(len(failures))
        for error, count in Counter(one.error for one in retried).items():
            log.warning("mail: %d not sent, will retry: %s", count, error)
        if refused:
            async with self._pool.acquire() as connection, audited(connection) as trail:
                given_up = await outbox.give_up_refused(connection, refused, now)
                await self._audit(trail, given_up, now)
            self._log(given_up, "refused for good")

    async def _give_up(self, now: datetime) -> None:
        async with self._pool.acquire() as connection, audited(connection) as trail:
            given_up = await outbox.give_up(connection, now, now - MAX_AGE)
            await self._audit(trail, given_up, now)
        self._log(given_up, "no longer worth sending")

    @staticmethod
    def _reason(row: GivenUp) -> str:
        """The server's last reply (its code and text), and why trying stopped."""
        if row.link_expires_at is not None and row.link_expires_at <= row.given_up_at:
            return f"its link expired at {row.link_expires_at:%Y-%m-%d %H:%M:%S}Z; {row.last_error}"
        return row.last_error

    async def _audit(self, trail: AuditTrail, given_up: list[GivenUp], now: datetime) -> None:
        for row in given_up:
            await trail.record(
                now=now,
                actor=ACTOR,
                action="mail.given_up",
                subject=row.recipient,
                reason=self._reason(row),
                details={"id": row.id, "template": row.template, "attempts": row.attempts},
            )

    def _log(self, given_up: list[GivenUp], why: str) -> None:
        for row in given_up:
            log.warning(
                "mail %d (%s to %s) given up, %s, after %d attempts: %s",
                row.id, row.template, row.recipient, why, row.attempts, self._reason(row),
            )  # fmt: skip
