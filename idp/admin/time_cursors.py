"""Cursors over lists ordered by (a time, an id): clients by creation, sessions by sign-in."""

from __future__ import annotations

from datetime import datetime

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
    except ValueError:
        raise InvalidRequestProblem("cursor is not one this API gave") from None
    if when.tzinfo is None:
        raise InvalidRequestProblem("cursor is not one this API gave")
    return when, str(key)
