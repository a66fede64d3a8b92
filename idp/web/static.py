"""The static files, read once and served from memory: the one stylesheet, and the passkey
script (the CSP allows only 'self' styles and scripts; neither is ever inline)."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from idp.resources import resource_dir


class StaticFile:
    """One file of ``static/``, with a strong ETag of its content and a day of caching."""

    def __init__(self, name: str, media_type: str) -> None:
        self.body = (resource_dir("static") / name).read_bytes()
        self.media_type = media_type
        self.headers = {
            "Cache-Control": "public, max-age=86400",
            "ETag": '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"',
            "X-Content-Type-Options": "nosniff",
        }

    async def serve(self, request: Request) -> Response:
        return Response(self.body, media_type=self.media_type, headers=self.headers)


# Routes take the bound ``serve`` (Starlette runs a plain callable object as an ASGI app).
stylesheet = StaticFile("idp.css", "text/css").serve
passkey_script = StaticFile("passkey.js", "text/javascript").serve


async def no_favicon(request: Request) -> Response:
    """Browsers ask for one on every page; answering 204 keeps their consoles clean."""
    return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})
