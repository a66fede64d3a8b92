"""Queueing a mail: composed from templates, sealed, into the outbox, in the caller's
transaction. Nothing here talks to a mail server; the sender (idp.mail.sender) delivers in the
background."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from idp.db import outbox
from idp.db.pool import Executor
from idp.mail.compose import Composer
from idp.mail.message import Mail, MailSeal
from idp.settings import Settings


class Outbox:
    def __init__(self, key_encryption_key: bytes) -> None:
        self.seal = MailSeal(key_encryption_key)

    async def put(
        self, db: Executor, mail: Mail, now: datetime, *, link_expires_at: datetime | None = None
    ) -> None:
        """Queue ``mail``; run it in the transaction that made the token the mail carries.
        ``link_expires_at``: when that token expires, after which the mail is not sent."""
        queued = outbox.Queued(mail.to, mail.template, self.seal.seal(mail), link_expires_at)
        await outbox.enqueue(db, queued, now)


@dataclass(frozen=True)
class Mailing:
    """What queues idp's mail, in an app (``state["mailing"]``) or a CLI command alike."""

    outbox: Outbox
    composer: Composer

    @classmethod
    def of(cls, settings: Settings) -> Mailing:
        """For resolved settings (the key-encryption key seals the outbox's rows)."""
        assert settings.key_encryption_key is not None
        return cls(Outbox(settings.key_encryption_key), Composer(settings))

    async def send(
        self,
        db: Executor,
        template: str,
        to: str,
        now: datetime,
        *,
        link_expires_at: datetime | None = None,
        **context: Any,
    ) -> None:
        """Queue the mail ``template`` makes for ``to``, in the caller's transaction; a mail
        carrying a token's link says when the token expires (``link_expires_at``)."""
        mail = self.composer.compose(template, to, **context)
        await self.outbox.put(db, mail, now, link_expires_at=link_expires_at)
