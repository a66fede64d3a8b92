"""A real HTTP server (``http.server`` in a thread) publishing a JWKS the test controls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from http_thread import QuietHandler, serving


@dataclass
class Request:
    if_none_match: str | None
    status: int


@dataclass
class JwksServer:
    keys: list[dict[str, Any]] = field(default_factory=list)
    cache_control: str | None = "public, max-age=300"
    age: int | None = None
    failure: int | None = None  # answer this status instead of the JWKS
    body_override: bytes | None = None
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    discovery_issuer: str | None = None  # the issuer the discovery document names

    @property
    def etag(self) -> str:
        return '"%x"' % (hash(json.dumps(self.keys, sort_keys=True)) & 0xFFFFFFFF)

    def answer(self, if_none_match: str | None) -> tuple[int, dict[str, str], bytes]:
        if self.failure is not None:
            return self.failure, {}, b"down"
        headers = {"ETag": self.etag}
        if self.cache_control is not None:
            headers["Cache-Control"] = self.cache_control
        if self.age is not None:
            headers["Age"] = str(self.age)
        if if_none_match == self.etag:
            return 304, headers, b""
        body = self.body_override or json.dumps({"keys": self.keys}).encode()
        return 200, {**headers, "Content-Type": "application/json"}, body


@contextmanager
def served(state: JwksServer) -> Iterator[JwksServer]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                issuer = state.discovery_issuer or state.url.removesuffix("/jwks.json")
                document = json.dumps({"issuer": issuer, "jwks_uri": state.url}).encode()
                self.reply(200, document, {"Content-Type": "application/json"})
                return
            if_none_match = self.headers.get("If-None-Match")
            status, headers, body = state.answer(if_none_match)
            state.requests.append(Request(if_none_match, status))
            self.reply(status, body, headers)

    with serving(Handler) as origin:
        state.url = f"{origin}/jwks.json"
        yield state
