"""SQL of the ``audit_log`` table: who did what, when, and why.

``record`` only writes the row. Callers go through ``idp.audit_trail``, which logs and counts
an event once the transaction that wrote it has committed: a rolled-back row is never announced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from idp.db.pool import Connection, Executor

INSERT = """
INSERT INTO audit_log (at, actor, action, subject, reason, details)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
RETURNING id
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
) -> AuditEvent:
    details = details or {}
    event_id: int = await connection.fetchval(
        INSERT, now, actor, action, subject, reason, json.dumps(details)
    )
    return AuditEvent(event_id, now, actor, action, subject, reason, details)


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
