"""Bounds on reading requests (``idp.web.head_limits``), over real sockets to uvicorn run
with ``idp serve``'s options: a head over 64 KiB gets 431 (after the answers to the requests
before it) and the connection is closed; a head not complete within ``head_timeout`` has its
connection closed, however it trickles in, a CRLF between requests included; heads within both
bounds are served, one after another and pipelined. A body that brings no data for
``head_timeout`` (trailer fields and chunk framing bring none) has its connection closed, as
has one with over 64 KiB of framing; trailer fields are discarded; a response sent before its
request's body is read ends the connection. Some run a toy app (one that reads bodies whole,
or answers slowly) under the same options. Last, ``idp serve --workers 2`` itself, with
``IDP_HEAD_TIMEOUT``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import uvicorn

from idp import server
from idp.app import create_app
from idp.clock import SystemClock
from idp.settings import Settings
from idp.web.head_limits import MAX_HEAD_BYTES
from tests.helpers import free_port
from tests.processes import Processes, idp_environ

HEAD_TIMEOUT = 0.5  # seconds: injected through the setting
MARGIN = 1.0  # seconds a close may come late on a loaded machine
EARLY = 0.01  # seconds a timer may fire early (uvloop's count whole milliseconds)
ANSWER_LIMIT = 10.0  # seconds
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@contextlib.asynccontextmanager
async def serving(app: Any, settings: Settings) -> AsyncIterator[int]:
    """uvicorn serving ``app`` on a free port of 127.0.0.1, configured as ``idp serve``
    configures it for ``settings``."""
    chosen = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=chosen,
        log_level="warning",
        lifespan="on",
        **server.options(settings),
    )
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    try:
        async with asyncio.timeout(15):
            while not running.started:
                assert not task.done(), "uvicorn stopped while starting"
                await asyncio.sleep(0.01)
        yield chosen
    finally:
        running.should_exit = True
        await task


@pytest.fixture
async def port(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[int]:
    """idp, as ``idp serve`` runs it, with a short head timeout."""
    here = replace(settings, head_timeout=timedelta(seconds=HEAD_TIMEOUT))
    async with serving(create_app(here, clock=SystemClock(), run_scheduler=False), here) as chosen:
        yield chosen


def toy(settings: Settings) -> Any:
    """An ASGI app whose lifespan hands the protocol ``settings`` as idp's does. It reads a
    POST's body whole, waits a second on ``/slow``, and answers 200 with the number of header
    fields in its scope and the body it read."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                scope["state"]["settings"] = settings
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        if scope["method"] == "POST":
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
        if scope["path"] == "/slow":
            await asyncio.sleep(1)
        answer = b"%d %s" % (len(scope["headers"]), body)
        headers = [(b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


@contextlib.asynccontextmanager
async def serving_toy(settings: Settings, head_timeout: float) -> AsyncIterator[int]:
    here = replace(settings, head_timeout=timedelta(seconds=head_timeout))
    async with serving(toy(here), here) as chosen:
        yield chosen


@pytest.fixture
async def toy_port(settings: Settings) -> AsyncIterator[int]:
    async with serving_toy(settings, HEAD_TIMEOUT) as chosen:
        yield chosen


@contextlib.asynccontextmanager
async def connected(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def response_of(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and body of the next response."""
    async with asyncio.timeout(ANSWER_LIMIT):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        body = await reader.readexactly(length)
    return int(lines[0].split()[1]), body


async def status_of(reader: asyncio.StreamReader) -> int:
    """The status of the next response; its body read too."""
    return (await response_of(reader))[0]


async def closed_after(reader: asyncio.StreamReader, started: float) -> float:
    """Seconds from ``started`` until the server closed the connection (everything before the
    close read and dropped; a reset is a close too)."""
    async with asyncio.timeout(HEAD_TIMEOUT + 5):
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
    return time.monotonic() - started


@contextlib.asynccontextmanager
async def sending(
    writer: asyncio.StreamWriter, pieces: Iterable[bytes], pause: float
) -> AsyncIterator[None]:
    """Writes ``pieces`` in the background, ``pause`` seconds before each, until done, the
    connection fails, or the block ends."""

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            for piece in pieces:
                await asyncio.sleep(pause)
                writer.write(piece)
                await writer.drain()

    task = asyncio.create_task(send())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_an_oversized_head_gets_431_and_its_connection_is_closed(port: int) -> None:
    async with connected(port) as (reader, writer):
        answer = asyncio.create_task(status_of(reader))
        writer.write(HEALTHZ + b"X-Padding: ")
        offered = 0
        with contextlib.suppress(ConnectionError):
            while offered < 100 and not answer.done():  # the report's 100 MiB, 1 MiB at a time
                writer.write(b"a" * (1024 * 1024))
                await writer.drain()
                offered += 1

        assert await answer == 431
        assert await closed_after(reader, time.monotonic()) < MARGIN


async def test_a_complete_head_over_the_limit_in_one_write_gets_431(port: int) -> None:
    async with connected(port) as (reader, writer):
        padding = b"a" * MAX_HEAD_BYTES
        writer.write(HEALTHZ + b"X-Padding: " + padding + b"\r\n\r\n")

        assert await status_of(reader) == 431
        assert await closed_after(reader, time.monotonic()) < MARGIN


async def test_a_head_just_within_the_limit_is_served_and_the_connection_kept(port: int) -> None:
    async with connected(port) as (reader, writer):
        padding = b"a" * (MAX_HEAD_BYTES - len(HEALTHZ) - len(b"X-Padding: \r\n\r\n"))
        head = HEALTHZ + b"X-Padding: " + padding + b"\r\n\r\n"
        assert len(head) == MAX_HEAD_BYTES
        for _ in range(3):  # each request on the connection has the whole limit to itself
            writer.write(head[:1000])
            await writer.drain()
            writer.write(head[1000:])
            assert await status_of(reader) == 200


async def test_pipelined_requests_are_each_served(port: int) -> None:
    async with connected(port) as (reader, writer):
        writer.write((HEALTHZ + b"\r\n") * 20)

        assert [await status_of(reader) for _ in range(20)] == [200] * 20


async def test_half_a_request_line_has_its_connection_closed_within_the_head_timeout(
    port: int,
) -> None:
    started = time.monotonic()  # before the server's clock starts
    async with connected(port) as (reader, writer):
        writer.write(b"GET /heal")

        assert HEAD_TIMEOUT - EARLY <= await closed_after(reader, started) < HEAD_TIMEOUT + MARGIN


async def test_a_connection_that_sends_nothing_is_closed_within_the_head_timeout(
    port: int,
) -> None:
    started = time.monotonic()  # before the server's clock starts
    async with connected(port) as (reader, _):
        assert HEAD_TIMEOUT - EARLY <= await closed_after(reader, started) < HEAD_TIMEOUT + MARGIN


async def test_a_head_trickling_in_is_closed_within_the_head_timeout(port: int) -> None:
    """One header line every fifth of the timeout would keep the connection forever."""
    started = time.monotonic()  # before the server's clock starts
    async with connected(port) as (reader, writer):
        writer.write(HEALTHZ)

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for number in range(1000):
                    await asyncio.sleep(HEAD_TIMEOUT / 5)
                    writer.write(b"X-Line-%d: x\r\n" % number)
                    await writer.drain()

        trickling = asyncio.create_task(trickle())
        try:
            assert (
                HEAD_TIMEOUT - EARLY <= await closed_after(reader, started) < HEAD_TIMEOUT + MARGIN
            )
        finally:
            trickling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trickling


async def test_a_later_request_on_a_kept_connection_has_its_own_head_timeout(port: int) -> None:
    async with connected(port) as (reader, writer):
        writer.write(HEALTHZ + b"\r\n")
        assert await status_of(reader) == 200
        await asyncio.sleep(HEAD_TIMEOUT * 1.5)  # idle, within uvicorn's keep-alive timeout
        writer.write(HEALTHZ)
        await asyncio.sleep(HEAD_TIMEOUT / 2)
        writer.write(b"\r\n")

        assert await status_of(reader) == 200


CHUNKED_POST = b"POST /read HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"


async def test_trailer_fields_are_discarded(toy_port: int) -> None:
    """RFC 9112 §7.1.2: the trailer section may be discarded; uvicorn would add it to the
    request's header fields."""
    async with connected(toy_port) as (reader, writer):
        writer.write(CHUNKED_POST + b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n")

        assert await response_of(reader) == (200, b"2 hello")  # Host, Transfer-Encoding


async def test_endless_trailer_fields_close_the_connection_past_64_kib(settings: Settings) -> None:
    """Each field was kept: 40 MiB of ``a:b`` grew the worker by about 1 GiB. A long head
    timeout here: the size alone closes the connection."""
    async with serving_toy(settings, 30.0) as chosen, connected(chosen) as (reader, writer):
        writer.write(CHUNKED_POST + b"0\r\n")
        await writer.drain()
        started = time.monotonic()
        with contextlib.suppress(ConnectionError):
            for _ in range(4):
                writer.write(b"a:b\r\n" * (MAX_HEAD_BYTES // 5 // 2))
                await writer.drain()

        assert await closed_after(reader, started) < MARGIN


async def test_trailer_fields_trickling_in_are_closed_within_the_head_timeout(
    toy_port: int,
) -> None:
    async with connected(toy_port) as (reader, writer):
        writer.write(CHUNKED_POST + b"1\r\na\r\n0\r\n")
        await writer.drain()
        started = time.monotonic()
        fields = (b"X-Line-%d: x\r\n" % number for number in range(1000))
        async with sending(writer, fields, HEAD_TIMEOUT / 5):
            assert (
                HEAD_TIMEOUT - EARLY <= await closed_after(reader, started) < HEAD_TIMEOUT + MARGIN
            )


async def test_a_crlf_between_requests_starts_the_head_timeout(port: int) -> None:
    """llhttp skips CRLFs before a request line, and uvicorn's keep-alive timer stops at any
    byte read: the connection was open for ever."""
    async with connected(port) as (reader, writer):
        writer.write(HEALTHZ + b"\r\n")
        assert await status_of(reader) == 200
        started = time.monotonic()
        writer.write(b"\r\n")

        assert HEAD_TIMEOUT - EARLY <= await closed_after(reader, started) < HEAD_TIMEOUT + MARGIN


async def test_a_response_before_its_body_is_read_ends_the_connection(port: int) -> None:
    """The rest of a declared body, however slowly it comes, keeps no connection open."""
    async with connected(port) as (reader, writer):
        writer.write(HEALTHZ + b"Content-Length: 1000000\r\n\r\n")
        assert await status_of(reader) == 200
        started = time.monotonic()
        async with sending(writer, (b"a" for _ in range(1000)), HEAD_TIMEOUT / 5):
            assert await closed_after(reader, started) < MARGIN


async def test_a_body_that_stops_coming_is_closed_within_the_head_timeout(toy_port: int) -> None:
    async with connected(toy_port) as (reader, writer):
        writer.write(b"POST /read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n")
        writer.write(b"a" * 10)
        await writer.drain()
        started = time.monotonic()

        assert HEAD_TIMEOUT - EARLY <= await closed_after(reader, started) < HEAD_TIMEOUT + MARGIN


async def test_a_chunk_framing_trickling_in_is_closed_within_the_head_timeout(
    toy_port: int,
) -> None:
    """A chunk extension brings no body data, however long it goes on."""
    async with connected(toy_port) as (reader, writer):
        writer.write(CHUNKED_POST + b"1;x=")
        await writer.drain()
        started = time.monotonic()
        async with sending(writer, (b"a" for _ in range(1000)), HEAD_TIMEOUT / 5):
            assert (
                HEAD_TIMEOUT - EARLY <= await closed_after(reader, started) < HEAD_TIMEOUT + MARGIN
            )


async def test_a_body_with_pauses_shorter_than_the_head_timeout_is_read_whole(
    toy_port: int,
) -> None:
    """The bound is on a pause, not on the whole body: this one takes twice the timeout."""
    async with connected(toy_port) as (reader, writer):
        writer.write(b"POST /read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n")
        async with sending(writer, (b"a" for _ in range(10)), HEAD_TIMEOUT / 5):
            assert await response_of(reader) == (200, b"2 " + b"a" * 10)
        writer.write(CHUNKED_POST)
        chunks = [b"1\r\nb\r\n"] * 10 + [b"0\r\n\r\n"]
        async with sending(writer, chunks, HEAD_TIMEOUT / 5):
            assert await response_of(reader) == (200, b"2 " + b"b" * 10)


async def test_an_oversized_pipelined_head_is_answered_after_the_request_before_it(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Written at once, the 431 read as the answer to the request still in hand, whose own
    answer then failed (write after the 431's shutdown). Twice the limit: a head that begins in
    the read that ends the request before it is counted from the next read on."""
    slow = b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.addHandler(caplog.handler)
    try:
        async with serving_toy(settings, HEAD_TIMEOUT) as chosen, connected(chosen) as sides:
            reader, writer = sides
            writer.write(slow + HEALTHZ + b"X-Padding: ")
            writer.write(b"a" * (2 * MAX_HEAD_BYTES + 10))

            assert await status_of(reader) == 200
            assert await status_of(reader) == 431
            assert await closed_after(reader, time.monotonic()) < MARGIN
    finally:
        uvicorn_errors.removeHandler(caplog.handler)
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []


@pytest.mark.usefixtures("pool")  # for its TRUNCATE: idp starts on an empty database
async def test_idp_serve_workers_refuse_an_oversized_head_and_close_a_slow_one(
    processes: Processes, migrated: str, kek: bytes
) -> None:
    chosen = free_port()
    env = idp_environ(migrated, kek, f"http://127.0.0.1:{chosen}", IDP_HEAD_TIMEOUT="1s")
    await processes.serve(env, chosen, workers=2)

    async with connected(chosen) as (reader, writer):
        writer.write(HEALTHZ + b"X-Padding: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n")
        assert await status_of(reader) == 431
        assert await closed_after(reader, time.monotonic()) < MARGIN
    started = time.monotonic()
    async with connected(chosen) as (reader, writer):
        writer.write(b"GET /heal")
        assert 1.0 - EARLY <= await closed_after(reader, started) < 1.0 + MARGIN
