"""The refresh rule: when a presented refresh token replaces its family's current token.

The rule runs in two places. A refresh is one conditional UPDATE ... RETURNING of the family's
row (``idp.db.refresh_tokens.ROTATE``), so it is SQL: its WHERE is the conjunction of ``SQL``.
A refused token must be told why (``idp.oauth.grants.refresh_token.judge``) from the row as
``refresh_tokens.find`` reads it, so it is Python: ``failed``, which also decides whether
introspection calls a refresh token active (``idp.db.token_status.RefreshState``). Each
condition is written once in each language, keyed by the same ``Condition``, the twins side by
side in this module: a change to one shows beside the other. ``failed`` is empty exactly when
the statement matches the row; tests/oauth/test_refresh_rule.py builds every state a family can
be in and checks that each condition, the whole statement, the diagnosis and introspection
agree.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from idp.db.refresh_tokens import Stored


class Condition(enum.Enum):
    """What a presented token and its family's row must meet for the token to rotate."""

    CURRENT = enum.auto()  # the family's current token: an earlier one is a reuse
    OWN_CLIENT = enum.auto()  # RFC 6749 §6: bound to the client it was issued to
    NOT_REVOKED = enum.auto()  # by a reuse, /revoke, a code replay, the user's revocation
    BEFORE_EXPIRY = enum.auto()  # the family's absolute lifetime
    BEFORE_IDLE_EXPIRY = enum.auto()  # the idle lifetime, renewed by each rotation
    WITHIN_SCOPE = enum.auto()  # RFC 6749 §6: a scope asked for may narrow, never widen


# Over the family row ``f`` (found by its handle's digest, $1) and the rotation's parameters:
# $2 the presented token's digest, $3 now, $5 the presenting client, $7 the scope asked for.
# Disabling a user revokes their families (migration 0011): the users table is not read.
SQL: dict[Condition, str] = {
    Condition.CURRENT: "f.token_hash = $2",
    Condition.OWN_CLIENT: "f.client_id = $5",
    Condition.NOT_REVOKED: "f.revoked_at IS NULL",
    Condition.BEFORE_EXPIRY: "$3 < f.expires_at",
    Condition.BEFORE_IDLE_EXPIRY: "$3 < f.idle_expires_at",
    Condition.WITHIN_SCOPE: "$7::text[] <@ f.scopes",
}


def where(*, narrowed: bool) -> str:
    """The conditions of the rotation's WHERE; the scope's only when a scope is asked for
    (without one, the family's own scope is kept, so it always holds)."""
    return " AND ".join(
        sql for condition, sql in SQL.items() if narrowed or condition is not Condition.WITHIN_SCOPE
    )


def failed(
    family: Stored, token_hash: bytes, client_id: str, now: datetime, scopes: list[str] | None
) -> frozenset[Condition]:
    """The conditions ``family``'s row does not meet for this token, client, instant and scope
    asked for (None: none asked); empty exactly when the rotation matches the row."""
    met = {
        Condition.CURRENT: family.is_current(token_hash),
        Condition.OWN_CLIENT: family.client_id == client_id,
        Condition.NOT_REVOKED: family.revoked_at is None,
        Condition.BEFORE_EXPIRY: now < family.expires_at,
        Condition.BEFORE_IDLE_EXPIRY: now < family.idle_expires_at,
        Condition.WITHIN_SCOPE: scopes is None or set(scopes) <= set(family.scopes),
    }
    return frozenset(condition for condition, holds in met.items() if not holds)
