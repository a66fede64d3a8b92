"""``/jwks.json``: the published keys, straight from the keyring's memory (RFC 7517 §5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from idp.web.in_memory import InMemoryEndpoint, RawHeaders

CORS_OPEN = (b"access-control-allow-origin", b"*")
JSON = b"application/json"


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison, a list of tags, or ``*``."""
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def _if_none_match(raw_headers: RawHeaders) -> str | None:
    """The header without building a ``Headers`` object (ASGI names are already lower-case)."""
    for name, value in raw_headers:
        if name == b"if-none-match":
            return value.decode("latin-1")
    return None


def jwks_answer(
    state: Mapping[str, Any], request_headers: RawHeaders
) -> tuple[int, RawHeaders, bytes]:
    """Status, headers and body, from the keyring's memory alone."""
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


jwks = InMemoryEndpoint(jwks_answer)
