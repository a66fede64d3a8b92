"""The apps a user granted consent to, and taking that consent back.

Revoking an app's consent is the user saying the app may no longer act for them: the consent
goes (its next authorization request asks again), and so do the app's refresh families for the
user, with the access tokens issued from them deny-listed. The user's sign-in sessions stay.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from idp.accounts.services import Services
from idp.audit_trail import audited
from idp.db import consents, grants
from idp.db.consents import Consent

CLIENT_ID_MAX = 255


async def list_apps(services: Services, user_id: uuid.UUID) -> list[Consent]:
    return await consents.of_user(services.pool, user_id)


async def revoke_app(
    services: Services,
    user_id: uuid.UUID,
    client_id: str | None,
    now: datetime,
    *,
    actor: str | None = None,
    reason: str = "consent revoked by the user",
) -> bool:
    """False, changing nothing, when the user has no consent for ``client_id``. ``actor``: who
    revoked it, when not the user (an operator, through the management API)."""
    if not client_id or len(client_id) > CLIENT_ID_MAX or not client_id.isprintable():
        return False  # names no client; PostgreSQL text could not even hold a NUL
    async with services.pool.acquire() as connection, audited(connection) as trail:
        if not await consents.revoke(connection, user_id, client_id):
            return False
        revoked = await grants.revoke_client_tokens(
            connection,
            user_id,
            client_id,
            now,
            services.deny_until(now),
            reason=reason,
        )
        await trail.record(
            now=now,
            actor=actor or f"user:{user_id}",
            action="consent.revoked",
            subject=str(user_id),
            details={
                "client_id": client_id,
                "refresh_families": revoked.refresh_families,
                "access_tokens": revoked.access_tokens,
            },
        )
    return True
