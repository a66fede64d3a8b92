"""Field types the management API's models share: text that the database can hold and a page
can show (no control characters, bounded), addresses, roles, page sizes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, Field

from idp.admin.cursors import DEFAULT_LIMIT, MAX_LIMIT

# Printable text: no C0/C1 controls (NUL cannot be stored; the rest would garble logs and pages).
_PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=_PRINTABLE)]
Reason = Annotated[str, Field(min_length=1, max_length=500, pattern=_PRINTABLE)]
Email = Annotated[
    str, Field(min_length=3, max_length=254, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$")
]
# A URI as the database holds it and a page shows it: printable, bounded; what it may be is the
# rule of what it is for (redirect URIs: idp.oauth.redirect_uris; resources: idp.admin.resources).
Uri = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^[\x21-\x7e]+$")]
Role = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
Cursor = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_-]+$")]
Limit = Annotated[
    int, Field(ge=1, le=MAX_LIMIT, description=f"Page size (default {DEFAULT_LIMIT})")
]
# The ``next_cursor`` of every page.
NextCursor = Annotated[
    str | None, Field(description="Pass as cursor for the next page; null: last")
]


class PageQuery(BaseModel):
    """The query of every paged list: ``limit`` items after ``cursor`` (idp.admin.cursors);
    a list with filters adds them in a subclass."""

    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None


# RFC 3339 §5.6 date-time: an offset is required (a time without one names no instant).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("not an RFC 3339 date-time (e.g. 2026-12-01T09:30:00Z)")
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0
        raise ValueError("the time is out of range") from None


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_utc)]
