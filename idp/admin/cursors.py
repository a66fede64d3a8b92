"""Opaque cursors for paging through lists (never OFFSET: page 1,000 costs what page 1 does).

A cursor carries the sort key of the last item a page showed; the next page starts after it, by
an index. It is base64url JSON, opaque to callers and checked like any other input.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from idp.admin.problems import InvalidRequestProblem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Item = TypeVar("Item")


def shown(
    found: Sequence[Item], limit: int, cursor_of: Callable[[Item], str]
) -> tuple[list[Item], str | None]:
    """The page in ``found`` (fetched with ``limit + 1``: one more tells whether there is a next
    page) and the cursor of its last item, or None on the last page."""
    page = list(found[:limit])
    if len(found) > limit and page:
        return page, cursor_of(page[-1])
    return page, None


def encode(key: list[Any]) -> str:
    text = json.dumps(key, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cursor: str, *, arity: int) -> list[Any]:
    """The sort key ``encode`` made: a list of ``arity`` strings or integers."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode())
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidRequestProblem("cursor is not one this API gave") from None
    if (
        not isinstance(key, list)
        or len(key) != arity
        or not all(isinstance(part, str | int) and not isinstance(part, bool) for part in key)
        or any(isinstance(part, str) and "\x00" in part for part in key)
    ):
        raise InvalidRequestProblem("cursor is not one this API gave")
    return key
