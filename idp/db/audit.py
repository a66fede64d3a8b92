"""SQL of the ``audit_log`` table: who did what, when, and why.

``record`` only writes the row. Callers go through ``idp.audit_trail``, which logs and counts
an event once the transaction that wrote it has committed: a rolled-back row is never announced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from idp.db.pool import Connection, Executor

INSERT = """
INSERT INTO audit_log (at, actor, action, subject, reason, details)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
RETURNING id
"""


_COLUMNS = "id, at, actor, action, subject, reason, details"


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


def _event(row: asyncpg.Record) -> AuditEvent:
    return AuditEvent(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        subject=row["subject"],
        reason=row["reason"],
        details=json.loads(row["details"]),
    )


async def recent(connection: Executor, limit: int = 50) -> list[AuditEvent]:
    """The last ``limit`` events, oldest first (``idp audit tail``)."""
    return list(reversed(await page(connection, before=None, limit=limit)))


async def page(
    connection: Executor,
    *,
    before: int | None,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    action_prefix: str | None = None,
    subject: str | None = None,
) -> list[AuditEvent]:
    """Events newest first (by id, which the indexes (actor, id) and (action, id) serve), with
    ids below ``before``, at or after ``since``, before ``until``, and matching each filter
    given. Every filter is a bound parameter; only which of them apply shapes the text."""
    conditions: list[str] = []
    args: list[object] = []
    for condition, value in (
        ("id < ${}", before),
        ("at >= ${}", since),
        ("at < ${}", until),
        ("actor = ${}", actor),
        ("action = ${}", action),
        ("starts_with(action, ${})", action_prefix),
        ("subject = ${}", subject),
    ):
        if value is not None:
            args.append(value)
            conditions.append(condition.format(len(args)))
    args.append(limit)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM audit_log {where} ORDER BY id DESC LIMIT ${len(args)}", *args
    )
    return [_event(row) for row in rows]
