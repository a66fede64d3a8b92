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
import secrets
import time
from collections.abc import Awaitable, Callable

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
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


_KEY = RSAKey.generate_key(2048, private=True)


async def sign(request: Request) -> Response:
    """The least a token endpoint does: sign one RS256 JWT with a key parsed once."""
    now = int(time.time())
    claims = {
        "iss": "http://127.0.0.1",
        "sub": "bench",
        "aud": "https://api.example",
        "client_id": "bench",
        "iat": now,
        "exp": now + 600,
        "jti": secrets.token_urlsafe(16),
        "scope": "read",
    }
    token = jwt.encode({"alg": "RS256", "kid": "bench", "typ": "at+jwt"}, claims, _KEY)
    body = {"access_token": token, "token_type": "Bearer", "expires_in": 600, "scope": "read"}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


routes = [
    Route("/ceiling", constant_json(BODY), methods=["GET"]),
    Route("/ceiling/sign", sign, methods=["POST"]),
]
for text in filter(None, os.environ.get("BENCH_CEILING_SIZES", "").split(",")):
    size = int(text)
    routes.append(Route(f"/ceiling/{size}", constant_json(sized_body(size)), methods=["GET"]))

app = Starlette(routes=routes)
