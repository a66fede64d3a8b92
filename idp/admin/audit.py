"""The audit log, as operators read it (``idp audit tail`` and ``/admin/v1/audit``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from idp.admin import cursors
from idp.admin.problems import InvalidRequestProblem
from idp.db.audit import AuditEvent
from idp.db.audit import page as events_page
from idp.db.pool import Executor

PREFIX_MARK = "."  # an action filter ending in it ("user.") matches every action it starts


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None  # at or after
    until: datetime | None = None  # before
    actor: str | None = None
    action: str | None = None  # exact, or every action it starts when it ends in "."
    subject: str | None = None


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None


async def page(
    db: Executor, *, limit: int, cursor: str | None = None, where: AuditFilter = AuditFilter()
) -> AuditPage:
    """Events newest first, ``limit`` at a time, after ``cursor`` (the last id shown: events
    written meanwhile never shift a page, and each event is shown once)."""
    before = None if cursor is None else _last_id(cursor)
    prefix = where.action is not None and where.action.endswith(PREFIX_MARK)
    found = await events_page(
        db,
        before=before,
        limit=limit + 1,  # one more tells whether there is a next page
        since=where.since,
        until=where.until,
        actor=where.actor,
        action=None if prefix else where.action,
        action_prefix=where.action if prefix else None,
        subject=where.subject,
    )
    return AuditPage(*cursors.shown(found, limit, lambda last: cursors.encode([last.id])))


def _last_id(cursor: str) -> int:
    (last,) = cursors.decode(cursor, arity=1)
    if not isinstance(last, int) or not 0 < last < 2**63:  # a bigserial id
        raise InvalidRequestProblem("cursor is not one this API gave")
    return last
