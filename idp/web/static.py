"""The one stylesheet, read once and served from memory (the CSP allows only 'self' styles)."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from idp.resources import resource_dir

_CSS = (resource_dir("static") / "idp.css").read_bytes()
_HEADERS = {
    "Cache-Control": "public, max-age=86400",
    "ETag": '"' + hashlib.sha256(_CSS).hexdigest()[:16] + '"',
    "X-Content-Type-Options": "nosniff",
}


async def stylesheet(request: Request) -> Response:
    return Response(_CSS, media_type="text/css", headers=_HEADERS)


async def no_favicon(request: Request) -> Response:
    """Browsers ask for one on every page; answering 204 keeps their consoles clean."""
    return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})
