"""``GET /metrics``: Prometheus text exposition (see ``idp.metrics``), behind
``IDP_METRICS_TOKEN`` when it is set."""

from __future__ import annotations

import asyncio
import hmac

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from idp.db import outbox
from idp.metrics import CONTENT_TYPE, TALLY
from idp.oauth.errors import InvalidTokenError
from idp.web.errors import NO_STORE, bearer_error
from idp.web.state import AppState

# A scrape waits no longer than this for the outbox's count; without it, the gauge is left out.
MAIL_COUNT_TIMEOUT = 1.0


async def metrics(request: Request[AppState]) -> Response:
    token = request.state["settings"].metrics_token
    if token is not None:
        refusal = _refusal(request.headers.get("authorization"), token)
        if refusal is not None:
            return refusal
    TALLY.flush()  # this process's latest requests; the other workers flush every second
    waiting = await _mail_waiting(request.state["pool"])
    body = request.state["metrics"].render(mail_waiting=waiting)
    return Response(body, media_type=CONTENT_TYPE, headers=NO_STORE)


async def _mail_waiting(pool: asyncpg.Pool) -> int | None:
    """The outbox's waiting mails, counted now in the database every worker shares: a worker's
    own sender knows only its latest pass, which another worker's sending makes stale."""
    try:
        async with asyncio.timeout(MAIL_COUNT_TIMEOUT):
            waiting, _ = await outbox.pending_summary(pool)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None  # the counters are still worth a scrape while the database is away
    return waiting


def _refusal(authorization: str | None, token: str) -> Response | None:
    """RFC 6750 §3: a 401 with a Bearer challenge unless ``Authorization: Bearer <token>``."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return bearer_error(None)  # §3.1: no error code when no Bearer token was sent
    if hmac.compare_digest(presented.strip().encode("latin-1"), token.encode()):
        return None
    return bearer_error(InvalidTokenError("not the metrics token"))
