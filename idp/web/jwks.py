"""``/jwks.json``: the published keys, straight from the keyring's memory (RFC 7517 §5)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.web.state import AppState

CORS_OPEN = (b"access-control-allow-origin", b"*")
JSON = "application/json"


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison, a list of tags, or ``*``."""
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def _if_none_match(raw_headers: list[tuple[bytes, bytes]]) -> str | None:
    """The header without building a ``Headers`` object (ASGI names are already lower-case)."""
    for name, value in raw_headers:
        if name == b"if-none-match":
            return value.decode("latin-1")
    return None


async def jwks(request: Request[AppState]) -> Response:
    """Headers are appended pre-encoded: this endpoint is the hottest read path."""
    keyring = request.state["keyring"]
    snapshot = keyring.snapshot
    max_age = keyring.jwks_max_age(request.state["clock"].now())
    headers = [
        (b"cache-control", b"public, max-age=%d" % max_age),
        (b"etag", snapshot.etag.encode()),
        CORS_OPEN,
    ]
    if_none_match = _if_none_match(request.scope["headers"])
    if if_none_match is not None and etag_matches(if_none_match, snapshot.etag):
        response = Response(status_code=304)
    else:
        response = Response(snapshot.jwks_body, media_type=JSON)
    response.raw_headers.extend(headers)
    return response
