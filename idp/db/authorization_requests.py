"""SQL of ``authorization_requests``: an /authorize request waiting for sign-in or consent.

``waiting_for`` is the step the request is at; ``login_sid`` the session whose sign-in was made
for this very request (migration 0013), written when the login step moves it on to consent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from idp.db.pool import Executor

Step = Literal["login", "consent"]

INSERT = """
INSERT INTO authorization_requests (id, client_id, params, created_at, expires_at, waiting_for)
VALUES ($1, $2, $3::jsonb, $4, $5, $6)
"""
SELECT_LIVE = """
SELECT client_id, params, waiting_for, login_sid FROM authorization_requests
WHERE id = $1 AND expires_at > $2
"""
MOVE = """
UPDATE authorization_requests SET waiting_for = $2, login_sid = $3
WHERE id = $1 AND expires_at > $4
RETURNING id
"""
FINISH = "DELETE FROM authorization_requests WHERE id = $1 AND expires_at > $2 RETURNING id"


@dataclass(frozen=True)
class Parked:
    client_id: str
    params: dict[str, Any]
    waiting_for: Step
    login_sid: str | None


async def insert(
    db: Executor,
    *,
    id_hash: bytes,
    client_id: str,
    params: dict[str, Any],
    waiting_for: Step,
    now: datetime,
    expires_at: datetime,
) -> None:
    await db.execute(INSERT, id_hash, client_id, json.dumps(params), now, expires_at, waiting_for)


async def live(db: Executor, id_hash: bytes, now: datetime) -> Parked | None:
    row = await db.fetchrow(SELECT_LIVE, id_hash, now)
    if row is None:
        return None
    params: dict[str, Any] = json.loads(row["params"])
    return Parked(row["client_id"], params, cast(Step, row["waiting_for"]), row["login_sid"])


async def move(
    db: Executor, id_hash: bytes, waiting_for: Step, login_sid: str | None, now: datetime
) -> bool:
    """Set the step the live request waits for, and the session signed in for it. False: the
    request is gone (expired, or completed meanwhile)."""
    moved = await db.fetchval(MOVE, id_hash, waiting_for, login_sid, now)
    return moved is not None


async def finish(db: Executor, id_hash: bytes, now: datetime) -> bool:
    """Remove the live request as it completes; False if it was already gone, so that one
    request yields at most one code even when its last step is submitted twice at once."""
    finished = await db.fetchval(FINISH, id_hash, now)
    return finished is not None
