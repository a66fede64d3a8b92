"""The apps a user consented to, as operators see and revoke them
(``/admin/v1/users/{id}/consents``): the account page's "connected apps"
(idp.accounts.connected_apps), with the operator as the actor. Revoking one forgets the consent
and revokes that app's refresh families for the user; the user's sessions stay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from idp.accounts import connected_apps
from idp.accounts.services import Services
from idp.admin import cursors, users
from idp.admin.problems import NotFoundProblem
from idp.clock import Clock
from idp.db import consents
from idp.db.consents import Consent
from idp.db.pool import Executor


@dataclass(frozen=True)
class ConsentPage:
    consents: list[Consent]
    next_cursor: str | None


async def page(db: Executor, user_id: uuid.UUID, *, limit: int, cursor: str | None) -> ConsentPage:
    """The user's consents by client_id, ``limit`` at a time after ``cursor``; NotFoundProblem
    for no such user."""
    await users.get(db, user_id)
    after = "" if cursor is None else str(cursors.decode(cursor, arity=1)[0])
    found = await consents.page_of_user(db, user_id, after=after, limit=limit + 1)
    return ConsentPage(*cursors.shown(found, limit, lambda last: cursors.encode([last.client_id])))


async def revoke(
    services: Services, clock: Clock, *, actor: str, user_id: uuid.UUID, client_id: str
) -> None:
    """Audited as ``consent.revoked``; NotFoundProblem when the user has no consent for it."""
    if not await connected_apps.revoke_app(
        services,
        user_id,
        client_id,
        clock.now(),
        actor=actor,
        reason="consent revoked by an operator",
    ):
        raise NotFoundProblem(f"user {user_id} has no consent for client {client_id!r}")
