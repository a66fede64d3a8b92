"""SQL of the ``users`` table and its row mapping."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from idp.db.pool import Executor

_COLUMNS = (
    "id, email, name, email_verified, password_hash, roles, disabled, created_at, must_verify_email"
)

INSERT = f"""
INSERT INTO users (
    id, email, name, password_hash, roles, created_at, updated_at, email_verified, must_verify_email
)
VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)
RETURNING {_COLUMNS}
"""
SELECT_BY_EMAIL = f"SELECT {_COLUMNS} FROM users WHERE lower(email) = lower($1)"
SELECT_BY_ID = f"SELECT {_COLUMNS} FROM users WHERE id = $1"
# A sign-in's account as PostgreSQL folds its case (the key its attempts are counted by: the same
# folding as the unique index, so no spelling of an email escapes its account's counter), and
# the user it names, if any.
SELECT_FOR_SIGN_IN = f"""
SELECT lower($1::text) AS account, {", ".join(f"u.{c} AS user_{c}" for c in _COLUMNS.split(", "))}
FROM (VALUES (1)) AS one LEFT JOIN users u ON lower(u.email) = lower($1::text)
"""
SELECT_ALL = f"SELECT {_COLUMNS} FROM users ORDER BY lower(email)"
# Cursor pagination in address order by the users_email_lower index: never OFFSET. The cursor
# is always an index condition ('' sorts before every address), also in the generic plan that
# a prepared statement may switch to, where "$1 IS NULL OR ..." would filter every row before it.
SELECT_PAGE = f"""
SELECT {_COLUMNS} FROM users
WHERE lower(email) > coalesce($1::text, '')
  AND ($3::text IS NULL OR lower(email) LIKE $3 || '%')
  AND ($4::text IS NULL OR $4 = ANY(roles))
  AND ($5::boolean IS NULL OR disabled = $5)
ORDER BY lower(email)
LIMIT $2
"""
SET_DISABLED = """
UPDATE users SET disabled = $2, updated_at = $3 WHERE lower(email) = lower($1) RETURNING id
"""
# The row an operator's change starts from, locked until the transaction ends.
SELECT_FOR_UPDATE = f"SELECT {_COLUMNS} FROM users WHERE id = $1 FOR UPDATE"
SET_DISABLED_BY_ID = f"""
UPDATE users SET disabled = $2, updated_at = $3 WHERE id = $1 RETURNING {_COLUMNS}
"""
UPDATE_PROFILE = f"""
UPDATE users SET email = $2, name = $3, roles = $4, email_verified = $5, updated_at = $6
WHERE id = $1
RETURNING {_COLUMNS}
"""
# Enabled users holding a role, but one: who would still hold it if that one lost it.
COUNT_OTHER_HOLDERS = """
SELECT count(*) FROM users WHERE $1 = ANY(roles) AND NOT disabled AND id <> $2
"""
# What the user holds goes with the row (ON DELETE CASCADE, migrations 0015-0022).
DELETE = "DELETE FROM users WHERE id = $1 RETURNING id"
SET_HASH = """
UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1 RETURNING id
"""
SET_ROLES = f"""
UPDATE users
SET roles = ARRAY(
        SELECT DISTINCT role FROM unnest(roles || $2::text[]) AS role
        WHERE role <> ALL($3::text[]) ORDER BY role
    ),
    updated_at = $4
WHERE lower(email) = lower($1)
RETURNING {_COLUMNS}
"""
SET_NAME = "UPDATE users SET name = $2, updated_at = $3 WHERE id = $1 AND name IS DISTINCT FROM $2"
# Only while the address is still the one the mail went to: a link for an old address verifies
# nothing.
MARK_VERIFIED = f"""
UPDATE users SET email_verified = true, must_verify_email = false, updated_at = $3
WHERE id = $1 AND lower(email) = lower($2)
RETURNING {_COLUMNS}
"""
REPLACE_EMAIL = f"""
UPDATE users SET email = $2, email_verified = true, must_verify_email = false, updated_at = $3
WHERE id = $1
RETURNING {_COLUMNS}
"""


class EmailTakenError(Exception):
    """Another user already has this email (whatever its case)."""


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    name: str | None
    email_verified: bool
    password_hash: str | None  # None: invited, no password set yet
    roles: tuple[str, ...]
    disabled: bool
    created_at: datetime
    must_verify_email: bool = False  # signed up: no sign-in until the address is verified


def user_from(row: asyncpg.Record, prefix: str = "") -> User:
    """A user from a row; ``prefix`` names its columns when the row joins other tables."""
    return User(
        id=row[f"{prefix}id"],
        email=row[f"{prefix}email"],
        name=row[f"{prefix}name"],
        email_verified=row[f"{prefix}email_verified"],
        password_hash=row[f"{prefix}password_hash"],
        roles=tuple(row[f"{prefix}roles"]),
        disabled=row[f"{prefix}disabled"],
        created_at=row[f"{prefix}created_at"],
        must_verify_email=row[f"{prefix}must_verify_email"],
    )


async def insert(
    db: Executor,
    *,
    email: str,
    name: str | None,
    password_hash: str | None,
    roles: list[str],
    now: datetime,
    email_verified: bool = False,
    must_verify_email: bool = False,
) -> User:
    try:
        row = await db.fetchrow(
            INSERT,
            uuid.uuid4(),
            email,
            name,
            password_hash,
            roles,
            now,
            email_verified,
            must_verify_email,
        )
    except asyncpg.UniqueViolationError:
        raise EmailTakenError(email) from None
    assert row is not None
    return user_from(row)


async def by_email(db: Executor, email: str) -> User | None:
    row = await db.fetchrow(SELECT_BY_EMAIL, email)
    return None if row is None else user_from(row)


async def for_sign_in(db: Executor, email: str) -> tuple[str, User | None]:
    """``email`` case-folded as the users table folds it, and the user it names (or None)."""
    row = await db.fetchrow(SELECT_FOR_SIGN_IN, email)
    assert row is not None
    return row["account"], None if row["user_id"] is None else user_from(row, "user_")


async def by_id(db: Executor, user_id: uuid.UUID) -> User | None:
    row = await db.fetchrow(SELECT_BY_ID, user_id)
    return None if row is None else user_from(row)


async def all_users(db: Executor) -> list[User]:
    return [user_from(row) for row in await db.fetch(SELECT_ALL)]


def _like_prefix(text: str) -> str:
    """``text`` as a LIKE pattern matching itself only (before the appended %)."""
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def page(
    db: Executor,
    *,
    after: str | None,
    limit: int,
    email_prefix: str | None = None,
    role: str | None = None,
    disabled: bool | None = None,
) -> list[User]:
    prefix = None if email_prefix is None else _like_prefix(email_prefix)
    rows = await db.fetch(SELECT_PAGE, after, limit, prefix, role, disabled)
    return [user_from(row) for row in rows]


async def set_disabled(db: Executor, email: str, disabled: bool, now: datetime) -> uuid.UUID | None:
    """The user's id, or None when no user has this email."""
    user_id: uuid.UUID | None = await db.fetchval(SET_DISABLED, email, disabled, now)
    return user_id


async def set_password_hash(db: Executor, user_id: uuid.UUID, hashed: str, now: datetime) -> None:
    await db.execute(SET_HASH, user_id, hashed, now)


async def change_roles(
    db: Executor, email: str, add: list[str], remove: list[str], now: datetime
) -> User | None:
    row = await db.fetchrow(SET_ROLES, email, add, remove, now)
    return None if row is None else user_from(row)


async def set_name(db: Executor, user_id: uuid.UUID, name: str | None, now: datetime) -> bool:
    """Whether the name changed (the same name again writes nothing)."""
    status: str = await db.execute(SET_NAME, user_id, name, now)
    return status != "UPDATE 0"


async def mark_verified(db: Executor, user_id: uuid.UUID, email: str, now: datetime) -> User | None:
    """The user, now verified; None if they are gone or their address is no longer ``email``."""
    row = await db.fetchrow(MARK_VERIFIED, user_id, email, now)
    return None if row is None else user_from(row)


async def replace_email(db: Executor, user_id: uuid.UUID, email: str, now: datetime) -> User | None:
    """The user with ``email`` as their verified address; None if they are gone;
    EmailTakenError if another user has it."""
    try:
        row = await db.fetchrow(REPLACE_EMAIL, user_id, email, now)
    except asyncpg.UniqueViolationError:
        raise EmailTakenError(email) from None
    return None if row is None else user_from(row)


async def lock(db: Executor, user_id: uuid.UUID) -> User | None:
    """The user, locked FOR UPDATE until the caller's transaction ends (run it in one)."""
    row = await db.fetchrow(SELECT_FOR_UPDATE, user_id)
    return None if row is None else user_from(row)


async def other_enabled_holders(db: Executor, role: str, user_id: uuid.UUID) -> int:
    """How many enabled users other than ``user_id`` hold ``role``."""
    count: int = await db.fetchval(COUNT_OTHER_HOLDERS, role, user_id)
    return count


async def set_disabled_by_id(
    db: Executor, user_id: uuid.UUID, disabled: bool, now: datetime
) -> User | None:
    row = await db.fetchrow(SET_DISABLED_BY_ID, user_id, disabled, now)
    return None if row is None else user_from(row)


async def update_profile(
    db: Executor,
    user_id: uuid.UUID,
    *,
    email: str,
    name: str | None,
    roles: list[str],
    email_verified: bool,
    now: datetime,
) -> User | None:
    """The user with these values; None if they are gone; EmailTakenError if another user has
    ``email``."""
    try:
        row = await db.fetchrow(UPDATE_PROFILE, user_id, email, name, roles, email_verified, now)
    except asyncpg.UniqueViolationError:
        raise EmailTakenError(email) from None
    return None if row is None else user_from(row)


async def delete(db: Executor, user_id: uuid.UUID) -> bool:
    """Whether the user was there to delete; what references them goes too (run it in a
    transaction)."""
    return await db.fetchval(DELETE, user_id) is not None
