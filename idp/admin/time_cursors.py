"""Cursors over lists ordered by (a time, an id): clients by creation, sessions by sign-in."""

from __future__ import annotations

from datetime import UTC, datetime

from idp.admin import cursors
from idp.admin.problems import InvalidRequestProblem


def encode(at: datetime, key: str) -> str:
    return cursors.encode([at.isoformat(), key])


def decode(cursor: str | None) -> tuple[datetime, str] | None:
    """The (time, id) after which the next page starts; None for the first page."""
    if cursor is None:
        return None
    at, key = cursors.decode(cursor, arity=2)
    try:
        when = datetime.fromisoformat(str(at))
        if when.tzinfo is None:
            raise ValueError("no time zone")
        when = when.astimezone(UTC)  # out of range near year 1 or 9999: OverflowError
    except (ValueError, OverflowError):
        raise InvalidRequestProblem("cursor is not one this API gave") from None
    return when, str(key)
