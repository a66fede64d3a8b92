"""A user's own sign-in sessions, as the account page lists and ends them.

Ending a session from the account page is a remote sign-out (a lost laptop, a browser left
signed in elsewhere): the session ends, and so do the refresh families its sign-ins started,
with their access tokens deny-listed, as Keycloak ties refresh tokens to the session that
issued them. A sign-out at ``/logout`` (the person leaving the browser they are at) ends the
session only.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from idp.accounts.services import Services
from idp.audit_trail import AuditTrail, audited
from idp.db import grants, sessions
from idp.db.pool import Connection

# How stale a session's last-seen time may get: a busy browser writes its row at most this often.
SEEN_EVERY = timedelta(minutes=5)
# A sid is 22 base64url characters (idp.signin.start_session); anything else names no session.
_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# (substring, name) in the order they must be tested: Edge and Opera also say "Chrome", Chrome
# also says "Safari", Android also says "Linux", iOS also says "Mac OS X".
_BROWSERS = (
    ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
    ("Safari/", "Safari"), ("curl/", "curl"),
)  # fmt: skip
_SYSTEMS = (
    ("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("CrOS", "ChromeOS"),
    ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Linux", "Linux"),
)  # fmt: skip
RAW_SHOWN = 60


def browser_label(user_agent: str | None) -> str:
    """A short, readable name for a User-Agent ("Firefox on Linux"); the raw value, cut short,
    when neither the browser nor the system is one these tables know."""
    text = user_agent or ""
    browser = next((name for mark, name in _BROWSERS if mark in text), None)
    system = next((name for mark, name in _SYSTEMS if mark in text), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or f"A browser on {system}"
    if not text:
        return "Unknown browser"
    return text if len(text) <= RAW_SHOWN else text[: RAW_SHOWN - 1] + "…"


@dataclass(frozen=True)
class SessionView:
    """One live session as the account page shows it."""

    sid: str
    browser: str
    ip: str
    signed_in_at: datetime
    last_seen_at: datetime
    this_browser: bool


async def list_sessions(
    services: Services, user_id: uuid.UUID, current_sid: str, now: datetime
) -> list[SessionView]:
    """The user's live sessions, this browser's first, then the most recently used."""
    listed = await sessions.of_user(services.pool, user_id, now)
    views = [
        SessionView(
            sid=row.sid,
            browser=browser_label(row.user_agent),
            ip=row.ip or "unknown",
            signed_in_at=row.created_at,
            last_seen_at=row.last_seen_at or row.created_at,
            this_browser=row.sid == current_sid,
        )
        for row in listed
    ]
    return sorted(views, key=lambda view: not view.this_browser)  # stable: keeps the rest


async def end_session(
    services: Services,
    user_id: uuid.UUID,
    sid: str | None,
    now: datetime,
    *,
    actor: str | None = None,
    why: str = "ended from the account page",
) -> bool:
    """End one of the user's own live sessions and what it started; False, changing nothing,
    for a sid that is not a live session of this user (another user's looks the same as none).
    ``actor``: who ended it, when not the user (an operator, through the management API)."""
    if sid is None or not _SID.fullmatch(sid):
        return False
    async with services.pool.acquire() as connection, audited(connection) as trail:
        if not await sessions.end_of_user(connection, user_id, sid, now):
            return False
        await _revoke_started(
            services, connection, trail, user_id, [sid], now, why=why, actor=actor
        )
    return True


async def end_other_sessions(
    services: Services, user_id: uuid.UUID, keep_sid: str, now: datetime
) -> int:
    """End every live session of the user but this browser's; how many were ended."""
    async with services.pool.acquire() as connection, audited(connection) as trail:
        ended = await end_others_in(services, connection, trail, user_id, keep_sid, now)
    return len(ended)


async def end_others_in(
    services: Services,
    connection: Connection,
    trail: AuditTrail,
    user_id: uuid.UUID,
    keep_sid: str,
    now: datetime,
    *,
    why: str = "ended from the account page",
) -> list[str]:
    """``end_other_sessions`` in the caller's transaction (a password change runs it)."""
    ended = await sessions.end_others_of_user(connection, user_id, keep_sid, now)
    if ended:
        await _revoke_started(services, connection, trail, user_id, ended, now, why=why)
    return ended


async def _revoke_started(
    services: Services,
    connection: Connection,
    trail: AuditTrail,
    user_id: uuid.UUID,
    sids: list[str],
    now: datetime,
    *,
    why: str = "ended from the account page",
    actor: str | None = None,
) -> None:
    """Revoke what the ended sessions ``sids`` started; one audit event for them all."""
    revoked = await grants.revoke_session_tokens(
        connection, user_id, sids, now, services.deny_until(now), reason=f"session {why}"
    )
    await trail.record(
        now=now,
        actor=actor or f"user:{user_id}",
        action="session.ended",
        subject=str(user_id),
        reason=why,
        details={
            "sids": sids,
            "refresh_families": revoked.refresh_families,
            "access_tokens": revoked.access_tokens,
        },
    )
