"""A real HTTP server (``http.server`` in a thread) answering RFC 7662 introspection requests
from a table the test controls, and discovery naming it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from http_thread import QuietHandler, serving


@dataclass
class IntrospectionServer:
    client_id: str = "api"
    client_secret: str = "s3cret/+"
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # token -> active body
    failure: int | None = None
    requests: list[dict[str, str]] = field(default_factory=list)  # the form fields received
    origin: str = ""

    @property
    def endpoint(self) -> str:
        return f"{self.origin}/introspect"

    def answer(self, authorization: str | None, form: dict[str, str]) -> tuple[int, bytes]:
        if self.failure is not None:
            return self.failure, b"down"
        secret = self.client_secret.replace("/", "%2F").replace("+", "%2B")
        expected = base64.b64encode(f"{self.client_id}:{secret}".encode()).decode()
        if authorization != f"Basic {expected}":  # RFC 6749 §2.3.1, form-urlencoded first
            return 401, json.dumps({"error": "invalid_client"}).encode()
        body = self.answers.get(form.get("token", ""), {"active": False})
        return 200, json.dumps(body).encode()


@contextmanager
def served(state: IntrospectionServer) -> Iterator[IntrospectionServer]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            document = {"issuer": state.origin, "introspection_endpoint": state.endpoint}
            self.answer(200, json.dumps(document).encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            fields = parse_qs(self.rfile.read(length).decode())
            form = {name: values[0] for name, values in fields.items()}
            state.requests.append(form)
            self.answer(*state.answer(self.headers.get("Authorization"), form))

        def answer(self, status: int, body: bytes) -> None:
            self.reply(status, body, {"Content-Type": "application/json"})

    with serving(Handler) as origin:
        state.origin = origin
        yield state
