"""A real HTTP server (``http.server`` in a thread) publishing a JWKS the test controls."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                issuer = state.discovery_issuer or state.url.removesuffix("/jwks.json")
                document = json.dumps({"issuer": issuer, "jwks_uri": state.url}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)
                return
            if_none_match = self.headers.get("If-None-Match")
            status, headers, body = state.answer(if_none_match)
            state.requests.append(Request(if_none_match, status))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
