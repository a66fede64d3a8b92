"""Bounds on reading request heads (``idp.web.head_limits``), over real sockets to uvicorn run
with ``idp serve``'s options: a head over 64 KiB gets 431 and the connection is closed; a head
not complete within ``head_timeout`` has its connection closed, however it trickles in; heads
within both bounds are served, one after another and pipelined. Last, ``idp serve --workers 2``
itself, with ``IDP_HEAD_TIMEOUT``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import uvicorn

from idp import server
from idp.app import create_app
from idp.clock import SystemClock
from idp.settings import Settings
from idp.web.head_limits import MAX_HEAD_BYTES
from tests.conftest import free_port
from tests.processes import Processes, idp_environ, running

HEAD_TIMEOUT = 0.5  # seconds: injected through the setting
MARGIN = 1.0  # seconds a close may come late on a loaded machine
EARLY = 0.01  # seconds a timer may fire early (uvloop's count whole milliseconds)
ANSWER_LIMIT = 10.0  # seconds
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture
async def port(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[int]:
    """uvicorn on a free port of 127.0.0.1, configured as ``idp serve`` configures it."""
    chosen = free_port()
    here = replace(settings, head_timeout=timedelta(seconds=HEAD_TIMEOUT))
    config = uvicorn.Config(
        create_app(here, clock=SystemClock(), run_scheduler=False),
        host="127.0.0.1",
        port=chosen,
        log_level="warning",
        lifespan="on",
        **server.options(here),
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


@contextlib.asynccontextmanager
async def connected(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def status_of(reader: asyncio.StreamReader) -> int:
    """The status of the next response; its body read too."""
    async with asyncio.timeout(ANSWER_LIMIT):
        head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def closed_after(reader: asyncio.StreamReader, started: float) -> float:
    """Seconds from ``started`` until the server closed the connection (everything before the
    close read and dropped)."""
    async with asyncio.timeout(HEAD_TIMEOUT + 5):
        while await reader.read(65536):
            pass
    return time.monotonic() - started


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


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[Processes]:
    async with running(tmp_path) as started:
        yield started


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
