"""Client ID Metadata Documents served over real https from the test process: a small HTTP/1.1
server on 127.0.0.1 with a certificate from ``tests.smtp.TestAuthority``, answering each path as
told (status, headers, body, a delay) and counting connections and requests; and the app opened
with a DocumentFetcher that trusts that authority."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import httpx
from starlette.types import Receive, Scope, Send

from idp.app import create_app
from idp.clock import FrozenClock
from idp.oauth.document_fetch import DocumentFetcher
from idp.settings import Settings
from idp.web.state import AppState
from tests.conftest import Instance
from tests.smtp import TestAuthority


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0  # seconds before the headers
    length: bool = True  # send Content-Length (else the body ends when the connection does)


class DocumentServer:
    """``await server.start()``; ``server.url(path)``; ``server.answers[path] = Answer(...)``."""

    def __init__(self, authority: TestAuthority) -> None:
        self._context = authority.server_context()
        self.answers: dict[str, Answer] = {}
        self.requests: Counter[str] = Counter()
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def serve_document(self, path: str, document: dict[str, Any], **headers: str) -> str:
        """Serve ``document`` as JSON at ``path``, with ``headers`` (``Cache_Control=...``);
        its URL on 127.0.0.1."""
        names = {name.replace("_", "-"): value for name, value in headers.items()}
        body = json.dumps(document).encode()
        self.answers[path] = Answer(
            headers={"Content-Type": "application/json", **names}, body=body
        )
        return self.url(path)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            self.requests[path] += 1
            answer = self.answers.get(path, Answer(status=404, body=b"not here"))
            if answer.delay:
                await asyncio.sleep(answer.delay)
            lines = [f"HTTP/1.1 {answer.status} Answer", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in answer.headers.items()]
            if answer.length:
                lines.append(f"Content-Length: {len(answer.body)}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + answer.body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away (a refused size, a timeout): what the test wanted
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


def client_context(authority_dir: Path) -> ssl.SSLContext:
    """Trusting the authority ``document_server(authority_dir)`` made."""
    return ssl.create_default_context(cafile=str(authority_dir / "ca.pem"))


@contextlib.asynccontextmanager
async def document_server(directory: Path) -> AsyncIterator[DocumentServer]:
    server = DocumentServer(TestAuthority(directory))
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def app_fetching(
    settings: Settings,
    clock: FrozenClock,
    authority_dir: Path,
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 - the fetcher's, passed on
    peer: str = "127.0.0.1",
    **overrides: object,
) -> AsyncIterator[Instance]:
    """The app with IDP_CIMD on (and ``overrides``), fetching with a DocumentFetcher that trusts
    the authority in ``authority_dir``'s server (``document_server``) and gives up after
    ``timeout`` seconds; its requests come from the address ``peer``."""
    here = replace(settings, **{"cimd": True, **overrides})  # type: ignore[arg-type]
    fetcher = DocumentFetcher(
        allow_loopback=here.cimd_allow_loopback,
        ssl_context=client_context(authority_dir),
        timeout=timeout,
    )
    app = create_app(here, clock=clock, run_scheduler=False, documents=fetcher)
    try:
        async with app.router.lifespan_context(app) as state:
            assert state is not None

            async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
                scope["state"] = dict(state)
                await app(scope, receive, send)

            transport = httpx.ASGITransport(app=with_state, client=(peer, 50123))
            async with httpx.AsyncClient(transport=transport, base_url=here.issuer) as client:
                yield Instance(client=client, state=cast(AppState, state))
    finally:
        await fetcher.aclose()
