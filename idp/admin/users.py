"""Users, as operators manage them (``idp users ...`` and ``/admin/v1/users``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from idp.admin import cursors
from idp.admin.problems import ConflictProblem, NotFoundProblem, UnprocessableProblem
from idp.audit_trail import audited
from idp.clock import Clock
from idp.db import users
from idp.db.pool import Connection, Executor
from idp.db.users import User


@dataclass(frozen=True)
class UserFilter:
    email_prefix: str | None = None  # addresses starting with it, whatever the case
    role: str | None = None
    disabled: bool | None = None


@dataclass(frozen=True)
class UserPage:
    users: list[User]
    next_cursor: str | None


def parse_user_id(text: str) -> uuid.UUID:
    """A path's user id; NotFoundProblem for anything that is not one (no such user)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFoundProblem(f"no user has the id {text!r}") from None


def check_roles(roles: list[str]) -> list[str]:
    for role in roles:
        if not role or not role.isprintable() or any(char.isspace() for char in role):
            raise UnprocessableProblem(f"role {role!r} must be one word")
    return sorted(set(roles))


async def get(db: Executor, user_id: uuid.UUID) -> User:
    user = await users.by_id(db, user_id)
    if user is None:
        raise NotFoundProblem(f"no user has the id {user_id}")
    return user


async def page(
    db: Executor, *, limit: int, cursor: str | None, where: UserFilter = UserFilter()
) -> UserPage:
    """Users in address order (case-folded), ``limit`` at a time, after ``cursor``."""
    after = None if cursor is None else str(cursors.decode(cursor, arity=1)[0])
    found = await users.page(
        db,
        after=after,
        limit=limit + 1,  # one more tells whether there is a next page
        email_prefix=where.email_prefix,
        role=where.role,
        disabled=where.disabled,
    )
    more = len(found) > limit
    shown = found[:limit]
    next_cursor = cursors.encode([shown[-1].email.lower()]) if more and shown else None
    return UserPage(shown, next_cursor)


async def create(
    connection: Connection,
    *,
    clock: Clock,
    actor: str,
    email: str,
    name: str | None,
    password_hash: str | None,
    roles: list[str],
    email_verified: bool,
) -> User:
    """A user who signs in with ``password_hash`` (None: none yet; an invitation or a reset
    gives one). Audited as ``user.created``."""
    now = clock.now()
    async with audited(connection) as trail:
        try:
            user = await users.insert(
                connection,
                email=email,
                name=name,
                password_hash=password_hash,
                roles=check_roles(roles),
                now=now,
                email_verified=email_verified,
            )
        except users.EmailTakenError:
            raise ConflictProblem(f"a user with email {email} exists already") from None
        await trail.record(now=now, actor=actor, action="user.created", subject=str(user.id))
    return user
