"""Ending what a user holds: their sign-in sessions, refresh families and the access tokens
issued from them (``idp sessions revoke``, and a side effect of disabling a user, setting their
password, resetting their second factors or deleting them)."""

from __future__ import annotations

import uuid
from datetime import datetime

from idp.audit_trail import AuditTrail
from idp.db import grants
from idp.db.grants import RevokedGrants
from idp.db.pool import Connection
from idp.settings import Settings


async def revoke_user_sessions(
    connection: Connection,
    trail: AuditTrail,
    user_id: uuid.UUID,
    *,
    settings: Settings,
    now: datetime,
    actor: str,
    reason: str,
    audit_if_empty: bool = True,
) -> RevokedGrants:
    """End the user's sessions and refresh families in the caller's transaction, and audit it
    in the caller's trail as ``sessions.revoked``.

    Access tokens issued from the families are deny-listed for the longest lifetime any of them
    can have (RFC 9700 §4.14: nothing issued before keeps working). ``audit_if_empty=False``
    records nothing when there was nothing to end (a side effect of another audited action,
    such as disabling the user).
    """
    revoked = await grants.revoke_user_grants(
        connection, user_id, now, settings.deny_until(now), reason=reason
    )
    if audit_if_empty or not revoked.empty:
        await trail.record(
            now=now,
            actor=actor,
            action="sessions.revoked",
            subject=str(user_id),
            reason=reason,
            details=revoked.as_details(),
        )
    return revoked
