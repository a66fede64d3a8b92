"""``/jwks.json``: the published keys, straight from the keyring's memory (RFC 7517 §5)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.web.state import AppState

CORS_OPEN = {"Access-Control-Allow-Origin": "*"}


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison, a list of tags, or ``*``."""
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


async def jwks(request: Request[AppState]) -> Response:
    keyring = request.state["keyring"]
    snapshot = keyring.snapshot
    max_age = keyring.jwks_max_age(request.state["clock"].now())
    headers = {
        "Cache-Control": f"public, max-age={max_age}",
        "ETag": snapshot.etag,
        **CORS_OPEN,
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and etag_matches(if_none_match, snapshot.etag):
        return Response(status_code=304, headers=headers)
    return Response(snapshot.jwks_body, media_type="application/json", headers=headers)
