"""Queueing a mail: sealed, into the outbox, in the caller's transaction. Nothing here talks to
a mail server; the sender (idp.mail.sender) delivers in the background."""

from __future__ import annotations

from datetime import datetime

from idp.db import outbox
from idp.db.pool import Executor
from idp.mail.message import Mail, MailSeal


class Outbox:
    def __init__(self, key_encryption_key: bytes) -> None:
        self.seal = MailSeal(key_encryption_key)

    async def put(self, db: Executor, mail: Mail, now: datetime) -> None:
        """Queue ``mail``; run it in the transaction that made the token the mail carries."""
        queued = outbox.Queued(mail.to, mail.template, self.seal.seal(mail))
        await outbox.enqueue(db, queued, now)
