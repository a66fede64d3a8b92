"""SQL of ``rate_limits``: fixed-window counters for the forms that send mail."""

from __future__ import annotations

from datetime import datetime, timedelta

from idp.db.pool import Executor

# One statement counts the hit and starts a new window when the old one is over; $3 the window.
HIT = """
INSERT INTO rate_limits AS r (key, window_start, hits) VALUES ($1, $2, 1)
ON CONFLICT (key) DO UPDATE SET
    hits = CASE WHEN r.window_start > $2 - $3::interval THEN r.hits + 1 ELSE 1 END,
    window_start = CASE WHEN r.window_start > $2 - $3::interval THEN r.window_start ELSE $2 END
RETURNING hits
"""


async def hit(db: Executor, key: str, now: datetime, window: timedelta) -> int:
    """Count one hit of ``key``; how many it has had in its current window, this one included."""
    hits: int = await db.fetchval(HIT, key, now, window)
    return hits
