"""Audit events: written in the caller's transaction, announced (logged and counted) only once
that transaction has committed, so that a rolled-back event is neither logged nor counted. What
else this process must learn of the change (its in-memory deny list) waits for the commit too.

::

    async with pool.acquire() as connection, audited(connection) as trail:
        await clients.disable(connection, client_id)
        await trail.record(now=now, actor=actor, action="client.disabled", subject=client_id)
    # committed: the event is in the log and counted

``audited`` takes the place of ``connection.transaction()``. Opened inside another transaction
it is a savepoint, and its events are announced (its effects run) when the savepoint is
released: open the outermost transaction with ``audited`` when it must decide.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from idp.db import audit
from idp.db.audit import AuditEvent
from idp.db.pool import Connection
from idp.logs import event_log
from idp.metrics import count_event


class AuditTrail:
    """The events one transaction writes, and the effects that wait for it, until it commits."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.events: list[AuditEvent] = []
        self.effects: list[Callable[[], None]] = []

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Run ``effect`` once the transaction has committed, never if it rolls back: memory
        this process keeps of what the transaction wrote (other processes learn it by NOTIFY,
        which PostgreSQL also sends only on commit)."""
        self.effects.append(effect)

    async def record(
        self,
        *,
        now: datetime,
        actor: str,
        action: str,
        subject: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        event = await audit.record(
            self._connection,
            now=now,
            actor=actor,
            action=action,
            subject=subject,
            reason=reason,
            details=details,
        )
        self.events.append(event)


def announce(event: AuditEvent) -> None:
    """Log and count a committed event. Audit fields hold no secret by design: they may go to
    the log as they are."""
    event_log.info(
        event.action,
        extra={"event": event.action, "actor": event.actor, "subject": event.subject,
               "reason": event.reason, "details": event.details},
    )  # fmt: skip
    count_event(event.action)


@contextlib.asynccontextmanager
async def audited(connection: Connection) -> AsyncIterator[AuditTrail]:
    """A transaction on ``connection`` whose audit events are announced, and its effects run,
    once it commits (none if it rolls back)."""
    trail = AuditTrail(connection)
    async with connection.transaction():
        yield trail
    for effect in trail.effects:  # first: what this process refuses matters more than a log line
        effect()
    for event in trail.events:
        announce(event)
