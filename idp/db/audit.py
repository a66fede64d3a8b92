"""SQL of the ``audit_log`` table: who did what, when, and why."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from idp.db.pool import Connection, Executor
from idp.logs import event_log
from idp.metrics import count_event

INSERT = """
INSERT INTO audit_log (at, actor, action, subject, reason, details)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
"""
SELECT_RECENT = """
SELECT id, at, actor, action, subject, reason, details
FROM audit_log
ORDER BY id DESC
LIMIT $1
"""


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    reason: str | None
    details: dict[str, Any]


async def record(
    connection: Connection,
    *,
    now: datetime,
    actor: str,
    action: str,
    subject: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await connection.execute(INSERT, now, actor, action, subject, reason, json.dumps(details or {}))
    # Audit fields hold no secret by design: they may go to the log as they are.
    event_log.info(
        action,
        extra={"event": action, "actor": actor, "subject": subject, "reason": reason,
               "details": details or {}},
    )  # fmt: skip
    count_event(action)


async def recent(connection: Executor, limit: int = 50) -> list[AuditEvent]:
    rows = await connection.fetch(SELECT_RECENT, limit)
    return [
        AuditEvent(
            id=row["id"],
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            subject=row["subject"],
            reason=row["reason"],
            details=json.loads(row["details"]),
        )
        for row in reversed(rows)
    ]
