"""``GET /metrics``: Prometheus text exposition (see ``idp.metrics``), behind
``IDP_METRICS_TOKEN`` when it is set."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp.metrics import CONTENT_TYPE, TALLY
from idp.web.state import AppState

NO_STORE = {"Cache-Control": "no-store"}


async def metrics(request: Request[AppState]) -> Response:
    token = request.state["settings"].metrics_token
    if token is not None:
        refusal = _refusal(request.headers.get("authorization"), token)
        if refusal is not None:
            return refusal
    TALLY.flush()  # this process's latest requests; the other workers flush every second
    body = request.state["metrics"].render()
    return Response(body, media_type=CONTENT_TYPE, headers=NO_STORE)


def _refusal(authorization: str | None, token: str) -> Response | None:
    """RFC 6750 §3: a 401 with a Bearer challenge unless ``Authorization: Bearer <token>``;
    the challenge carries no error code when no Bearer token was sent (§3.1)."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        challenge, body = 'Bearer realm="idp-metrics"', {"error": "invalid_request"}
    elif hmac.compare_digest(presented.strip().encode("latin-1"), token.encode()):
        return None
    else:
        challenge = 'Bearer realm="idp-metrics", error="invalid_token"'
        body = {"error": "invalid_token"}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge, **NO_STORE})
