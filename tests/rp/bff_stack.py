"""A backend-for-frontend in front of a real idp, for tests of idp_rp.bff.

- ``Browser``: a cookie jar that keeps every cookie the BFF sets, with its attributes, and sends
  them back by hand (Python's cookie jar would withhold ``Secure`` cookies over
  ``http://127.0.0.1``, which browsers send);
- ``echo_api``: the upstream API the BFF's proxy forwards to: it verifies the bearer token with
  idp_rp's TokenVerifier and answers who it was for (``sub``, ``jti``) and what came in;
- ``refresh_generation``: how many refreshes idp made for a client, from its database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp_rp import InvalidTokenError, TokenVerifier

API = "https://api.example"


@dataclass(frozen=True)
class SetCookie:
    name: str
    value: str
    attributes: dict[str, str]  # lower-cased names; flags map to ""

    @property
    def removed(self) -> bool:
        return self.attributes.get("max-age") == "0"


def set_cookies(response: httpx.Response) -> dict[str, SetCookie]:
    """Every Set-Cookie of ``response`` by name (RFC 6265bis §5.6)."""
    found: dict[str, SetCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        name_value, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = name_value.partition("=")
        parsed: dict[str, str] = {}
        for attribute in attributes:
            key, _, attribute_value = attribute.partition("=")
            parsed[key.lower()] = attribute_value
        found[name] = SetCookie(name, value.strip('"'), parsed)
    return found


@dataclass
class Browser:
    """The browser's side of the BFF: ``http`` reaches the BFF, ``jar`` its cookies."""

    http: httpx.AsyncClient
    jar: dict[str, str] = field(default_factory=dict)

    def keep(self, response: httpx.Response) -> dict[str, SetCookie]:
        cookies = set_cookies(response)
        for cookie in cookies.values():
            if cookie.removed:
                self.jar.pop(cookie.name, None)
            else:
                self.jar[cookie.name] = cookie.value
        return cookies

    async def request(
        self, method: str, url: str, *, jar: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Sends ``jar`` (the current cookies unless given) and keeps what comes back."""
        sent = self.jar if jar is None else jar
        headers = dict(kwargs.pop("headers", {}))
        if sent:
            headers["cookie"] = "; ".join(f"{name}={value}" for name, value in sent.items())
        self.http.cookies.clear()
        response = await self.http.request(method, url, headers=headers, **kwargs)
        self.keep(response)
        return response

    def xsrf(self) -> dict[str, str]:
        return {"X-XSRF-TOKEN": self.jar["XSRF-TOKEN"]}


def echo_api(issuer: str, clock: Any, http: httpx.AsyncClient) -> Starlette:
    """The API behind the BFF: every method on every /api/ path, for tokens idp issued for API;
    it answers the path and query it received."""
    verifier = TokenVerifier.from_jwks_uri(
        f"{issuer}/jwks.json", issuer=issuer, audience=API, clock=clock, http=http
    )

    async def echo(request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            verified = await verifier.verify(token)
        except InvalidTokenError as error:
            return JSONResponse({"error": "invalid_token", "why": str(error)}, status_code=401)
        if scheme != "Bearer":
            return JSONResponse({"error": "invalid_request"}, status_code=401)
        return JSONResponse(
            {
                "sub": verified.subject,
                "jti": verified.claims["jti"],
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "body": (await request.body()).decode(),
                "cookie": request.headers.get("cookie"),
                "xsrf": request.headers.get("x-xsrf-token"),
            }
        )

    return Starlette(routes=[Route("/api/{rest:path}", echo, methods=["GET", "POST", "DELETE"])])


async def refresh_generation(pool: asyncpg.Pool, client_id: str) -> int:
    """How many times idp rotated the client's refresh tokens (one row per family; the count
    of refreshes idp actually made, whatever the BFF believes)."""
    value = await pool.fetchval(
        "SELECT COALESCE(SUM(generation), 0) FROM refresh_families WHERE client_id = $1",
        client_id,
    )
    return int(value)


async def family_revoked(pool: asyncpg.Pool, client_id: str) -> bool:
    value = await pool.fetchval(
        "SELECT bool_and(revoked_at IS NOT NULL) FROM refresh_families WHERE client_id = $1",
        client_id,
    )
    return bool(value)
