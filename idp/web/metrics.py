"""``GET /metrics``: Prometheus text exposition (see ``idp.metrics``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.metrics import CONTENT_TYPE, TALLY
from idp.web.state import AppState


async def metrics(request: Request[AppState]) -> Response:
    TALLY.flush()  # this process's latest requests; the other workers flush every second
    body = request.state["metrics"].render()
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
