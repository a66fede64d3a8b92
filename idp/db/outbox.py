"""SQL of ``mail_outbox``: mail waiting to be sent, sealed (idp.mail.message).

Senders claim due rows with ``FOR UPDATE SKIP LOCKED`` and lease them (``next_attempt_at`` moves
past the send's deadline) in one short statement, so several processes never send one mail
twice and no transaction stays open while SMTP talks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from idp.db.pool import Executor

INSERT = """
INSERT INTO mail_outbox (recipient, template, sealed, created_at, next_attempt_at)
VALUES ($1, $2, $3, $4, $4)
"""


@dataclass(frozen=True)
class Queued:
    recipient: str
    template: str
    sealed: bytes


async def enqueue(db: Executor, queued: Queued, now: datetime) -> None:
    """Run it in the transaction that made what the mail carries: both happen, or neither."""
    await db.execute(INSERT, queued.recipient, queued.template, queued.sealed, now)
