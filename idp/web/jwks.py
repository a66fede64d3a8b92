"""``/jwks.json``: the published keys, straight from the keyring's memory (RFC 7517 §5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp.web.state import AppState

CORS_OPEN = (b"access-control-allow-origin", b"*")
JSON = b"application/json"


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


def jwks_answer(
    state: Mapping[str, Any], request_headers: list[tuple[bytes, bytes]]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body, from memory alone: the front layer sends them
    (``idp.web.observe``), as the hottest read path."""
    keyring = state["keyring"]
    snapshot = keyring.snapshot
    max_age = keyring.jwks_max_age(state["clock"].now())
    headers = [
        (b"cache-control", b"public, max-age=%d" % max_age),
        (b"etag", snapshot.etag.encode()),
        CORS_OPEN,
    ]
    if_none_match = _if_none_match(request_headers)
    if if_none_match is not None and etag_matches(if_none_match, snapshot.etag):
        return 304, headers, b""
    body: bytes = snapshot.jwks_body
    headers += [(b"content-type", JSON), (b"content-length", b"%d" % len(body))]
    return 200, headers, body


async def jwks(request: Request[AppState]) -> Response:
    """The same answer through Starlette (HEAD, and anything the front layer passes on)."""
    status, headers, body = jwks_answer(request.scope["state"], request.scope["headers"])
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response
