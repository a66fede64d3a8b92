"""The benchmark's ceiling: the least a Starlette app under uvicorn can do per request.

One route returning a constant, pre-encoded JSON body, so the req/s measured here is what the
framework, the server and the machine allow before any idp code runs. ``scripts/bench`` serves it
with the same uvicorn options as ``idp serve`` (``ceiling:app``, with ``--app-dir bench``).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"status":"ok"}'


async def constant(request: Request) -> Response:
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/ceiling", constant, methods=["GET"])])
