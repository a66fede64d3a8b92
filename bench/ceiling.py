"""The benchmark's ceiling: the least a Starlette app under uvicorn can do per request.

Routes returning constant, pre-encoded JSON bodies, so the req/s measured here is what the
framework, the server and the machine allow before any idp code runs. ``/ceiling`` is the small
constant JSON; ``/ceiling/N`` returns a body of exactly N bytes for each N listed in
``BENCH_CEILING_SIZES`` (comma-separated), so that an idp endpoint is also compared with a
ceiling that writes as many bytes as it does (the JWKS, with its certificates, is ~3 KB).
``scripts/bench`` serves it with the same uvicorn options as ``idp serve``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"status":"ok"}'


def constant_json(body: bytes) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return endpoint


def sized_body(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes: ``{"pad":"xxx..."}``."""
    frame = b'{"pad":""}'
    return frame[:-2] + b"x" * max(0, size - len(frame)) + frame[-2:]


routes = [Route("/ceiling", constant_json(BODY), methods=["GET"])]
for text in filter(None, os.environ.get("BENCH_CEILING_SIZES", "").split(",")):
    size = int(text)
    routes.append(Route(f"/ceiling/{size}", constant_json(sized_body(size)), methods=["GET"]))

app = Starlette(routes=routes)
