"""A user's sign-in sessions, as operators see and end them (``/admin/v1/users/{id}/sessions``).

Ending one is what the user's own account page does ("end session": idp.accounts.account_sessions),
with the operator as the actor: the session ends, and so do the refresh families its sign-ins
started, their access tokens deny-listed. Ending all of them is ``idp sessions revoke``'s cut-off.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from idp.accounts import account_sessions
from idp.accounts.services import Services
from idp.admin import cursors, time_cursors, users
from idp.admin.problems import NotFoundProblem
from idp.admin.sessions import revoke_user_sessions
from idp.audit_trail import audited
from idp.clock import Clock
from idp.db import sessions
from idp.db.grants import RevokedGrants
from idp.db.pool import Connection, Executor
from idp.db.sessions import ListedSession
from idp.settings import Settings

WHY = "ended by an operator"


@dataclass(frozen=True)
class SessionPage:
    sessions: list[ListedSession]
    next_cursor: str | None


async def page(
    db: Executor, clock: Clock, user_id: uuid.UUID, *, limit: int, cursor: str | None
) -> SessionPage:
    """The user's live sessions in the order they began, ``limit`` at a time after ``cursor``;
    NotFoundProblem for no such user."""
    await users.get(db, user_id)
    after = time_cursors.decode(cursor)
    found = await sessions.page_of_user(db, user_id, clock.now(), after=after, limit=limit + 1)
    return SessionPage(
        *cursors.shown(found, limit, lambda last: time_cursors.encode(last.created_at, last.sid))
    )


async def end(
    services: Services, clock: Clock, *, actor: str, user_id: uuid.UUID, sid: str
) -> None:
    """End the user's live session ``sid`` and what it started (audited as ``session.ended``);
    NotFoundProblem when it is not a live session of this user."""
    if not await account_sessions.end_session(
        services, user_id, sid, clock.now(), actor=actor, why=WHY
    ):
        raise NotFoundProblem(f"user {user_id} has no live session {sid!r}")


async def end_all(
    connection: Connection,
    user_id: uuid.UUID,
    *,
    settings: Settings,
    clock: Clock,
    actor: str,
    reason: str = WHY,
) -> RevokedGrants:
    """End every session of the user, revoke their refresh families and deny-list the access
    tokens issued from them (idp.admin.sessions), audited as ``sessions.revoked`` with
    ``reason``: ``idp sessions revoke`` and ``POST /admin/v1/users/{id}/sessions/revoke``.
    NotFoundProblem for no such user."""
    now = clock.now()
    async with audited(connection) as trail:
        await users.get(connection, user_id)
        return await revoke_user_sessions(
            connection,
            trail,
            user_id,
            settings=settings,
            now=now,
            actor=actor,
            reason=reason,
        )
