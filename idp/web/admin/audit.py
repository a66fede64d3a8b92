"""``/admin/v1/audit``: the audit log, newest first, filtered and paged by cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from idp.admin import audit
from idp.admin.audit import AuditFilter
from idp.db.audit import AuditEvent
from idp.web.admin.api import Answer, Call, Operation, Reply
from idp.web.admin.types import Instant, Name, NextCursor, PageQuery

TAG = "audit"


class AuditEventOut(Reply):
    id: int
    at: datetime
    actor: str = Field(description="client:<id>, user:<id>, cli:<os user>, scheduler ...")
    action: str = Field(description="e.g. user.created, key.revoked")
    subject: str | None
    reason: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id,
            at=event.at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            reason=event.reason,
            details=event.details,
        )


class AuditList(Reply):
    items: list[AuditEventOut]
    next_cursor: NextCursor


class AuditQuery(PageQuery):
    since: Instant | None = Field(default=None, description="Events at or after it")
    until: Instant | None = Field(default=None, description="Events before it")
    actor: Name | None = None
    action: Name | None = Field(
        default=None, description='The action, or a prefix ending in "." (user.) for a family'
    )
    subject: Name | None = None


async def list_audit_events(call: Call) -> Answer:
    query = call.query_as(AuditQuery)
    found = await audit.page(
        call.state["pool"],
        limit=query.limit,
        cursor=query.cursor,
        where=AuditFilter(
            since=query.since,
            until=query.until,
            actor=query.actor,
            action=query.action,
            subject=query.subject,
        ),
    )
    return Answer(
        AuditList(
            items=[AuditEventOut.of(event) for event in found.events],
            next_cursor=found.next_cursor,
        )
    )


OPERATIONS = [
    Operation("GET", "/audit", list_audit_events, "List audit events, newest first", TAG,
              write=False, query=AuditQuery, reply=AuditList),
]  # fmt: skip
