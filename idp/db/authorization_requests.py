"""SQL of ``authorization_requests``: an /authorize request waiting for sign-in or consent."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from idp.db.pool import Executor

INSERT = """
INSERT INTO authorization_requests (id, client_id, params, created_at, expires_at)
VALUES ($1, $2, $3::jsonb, $4, $5)
"""
SELECT_LIVE = """
SELECT client_id, params FROM authorization_requests WHERE id = $1 AND expires_at > $2
"""
DELETE = "DELETE FROM authorization_requests WHERE id = $1"


async def insert(
    db: Executor,
    *,
    id_hash: bytes,
    client_id: str,
    params: dict[str, Any],
    now: datetime,
    expires_at: datetime,
) -> None:
    await db.execute(INSERT, id_hash, client_id, json.dumps(params), now, expires_at)


async def live(db: Executor, id_hash: bytes, now: datetime) -> tuple[str, dict[str, Any]] | None:
    row = await db.fetchrow(SELECT_LIVE, id_hash, now)
    if row is None:
        return None
    params: dict[str, Any] = json.loads(row["params"])
    return row["client_id"], params


async def delete(db: Executor, id_hash: bytes) -> None:
    await db.execute(DELETE, id_hash)
