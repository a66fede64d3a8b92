"""``/.well-known/openid-configuration`` and ``/.well-known/oauth-authorization-server``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from idp.web.in_memory import InMemoryEndpoint, RawHeaders
from idp.web.jwks import CORS_OPEN, JSON

# The metadata changes only with a new release or new settings, i.e. with a restart.
_HEADERS = [(b"cache-control", b"public, max-age=3600"), CORS_OPEN, (b"content-type", JSON)]


def discovery_answer(
    state: Mapping[str, Any], request_headers: RawHeaders
) -> tuple[int, RawHeaders, bytes]:
    """The metadata serialized once by the lifespan (``discovery_body``)."""
    body: bytes = state["discovery_body"]
    return 200, [*_HEADERS, (b"content-length", b"%d" % len(body))], body


discovery = InMemoryEndpoint(discovery_answer)
